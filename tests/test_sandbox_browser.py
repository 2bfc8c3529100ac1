"""The live sandbox, end to end.

Playwright tests (marked ``browser``) drive the real app in headless Chromium:
mouse strokes on the canvas, a real file upload, a non-image upload. AppTest
tests run the page script in-process for the robustness controls, the test
digits and the failure paths, which need no browser.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from bigmodels.base.i18n import LANGUAGES, catalogue, translate
from bigmodels.app.sandbox import ARCHITECTURES
from bigmodels.harness.drawing import stroke  # noqa: F401  (tests/test_journey.py draws with it too)
from bigmodels.models.shipped import weights_path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "sandbox.py"
VIEWS = {"cnn": ("gradcam", "saliency", "maps"), "lstm": ("rows", "curves"), "transformer": ("rollout", "last_layer")}
TIMEOUT = 180  # a busy shared CPU: loading three models and torch can take a while
browser = pytest.mark.browser


def shipped_models() -> list[str]:
    return [name for name in ARCHITECTURES if weights_path(name).is_file()]


def test_every_catalogue_key_the_page_uses_exists():
    text = PAGE.read_text(encoding="utf-8")
    keys = set(re.findall(r'\bt\(\s*"(sandbox\.[a-z_.]+)"', text))
    keys |= {f"sandbox.input.{m}" for m in ("draw", "upload", "random")}
    keys |= {f"sandbox.arch.{a}" for a in ARCHITECTURES}
    keys |= {f"sandbox.seen.which.{w}" for w in ("mnist", "naive")}
    keys |= {f"sandbox.why.{view}" for views in VIEWS.values() for view in views}
    keys |= {f"sandbox.gallery.error.{why}" for why in ("full", "label", "pixels", "unknown", "io")}
    keys |= {f"sandbox.card.{origin}" for origin in ("shipped", "run", "live")}
    assert len(keys) > 60
    for lang in LANGUAGES:
        assert not keys - catalogue(lang).keys(), (lang, keys - catalogue(lang).keys())


# ------------------------------------------------------------ page support
def test_pictures_keep_model_pixels_as_squares_and_heat_in_colour():
    from bigmodels.figures.pictures import HEAT, digit_picture, heat_picture, maps_picture

    pixels = torch.zeros(28, 28)
    pixels[3, 5] = 1.0
    picture = digit_picture(pixels, scale=4)
    assert picture.shape == (112, 112) and picture.dtype == np.uint8
    assert (picture[12:16, 20:24] == 255).all() and picture.sum() == 16 * 255
    heat = torch.zeros(28, 28)
    heat[0, 0] = 1.0
    coloured = heat_picture(heat, scale=2)
    assert coloured.shape == (56, 56, 3)
    assert (coloured[0, 0] == HEAT[-1]).all() and (coloured[-1, -1] == HEAT[0]).all()
    over = heat_picture(heat, pixels, scale=1, opacity=0.5)  # the digit shows through
    assert over[3, 5].sum() > heat_picture(heat, scale=1)[3, 5].sum()
    sheet = maps_picture(torch.rand(6, 28, 28), columns=3, scale=2, gap=4)
    assert sheet.shape == (2 * 56 + 4, 3 * 56 + 2 * 4)


def test_lstm_beliefs_sit_level_with_the_rows_they_follow():
    from bigmodels.figures.pictures import HEAT, belief_picture

    beliefs = torch.zeros(28, 10)
    beliefs[5, 7] = 1.0  # sure of 7 after row 6
    pixels = torch.zeros(28, 28)
    pixels[5, 0] = 1.0
    picture = belief_picture(beliefs, pixels, scale=2, gap=2)
    assert picture.shape == (56, (28 + 2 + 10) * 2, 3)
    assert (picture[10, 0] == 255).all()  # the digit's ink, row 6
    assert (picture[10, (30 + 7) * 2] == HEAT[-1]).all() and (picture[0, 30 * 2] == HEAT[0]).all()


def test_pictures_are_cached_pngs_of_the_same_pixels():
    from PIL import Image

    from bigmodels.app.sandbox import digit_png, heat_png, probability_bars

    pixels = torch.zeros(28, 28)
    pixels[10:20, 13] = 1.0
    png = digit_png(pixels, 2)
    assert png == digit_png(pixels.clone(), 2)  # same pixels, same bytes (and the same media URL)
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (56, 56) and decoded[20:40, 26:28].min() == 255
    assert Image.open(io.BytesIO(heat_png(pixels, pixels))).size == (28 * 6, 28 * 6)
    bars = probability_bars([0.05] * 9 + [0.55], 9, "P <b>")
    assert bars.count("title=") == 10 and "P &lt;b&gt;" in bars and "9: 55.0%" in bars


def test_sources_are_grouped_per_architecture(tmp_path):
    from bigmodels.runs.sources import ModelSource
    from bigmodels.app.sandbox import sources_by_architecture

    sources = [ModelSource("shipped:cnn", "cnn", "CNN", tmp_path / "a.pt", "shipped"),
               ModelSource("run:1", "transformer", "run 1", tmp_path / "b.pt", "run"),
               ModelSource("run:2", "cnn", "run 2", tmp_path / "c.pt", "run"),
               ModelSource("run:3", "mlp", "an architecture this page has no column for", tmp_path / "d.pt", "run")]
    grouped = sources_by_architecture(sources)
    assert [s.id for s in grouped["cnn"]] == ["shipped:cnn", "run:2"]
    assert grouped["lstm"] == [] and [s.id for s in grouped["transformer"]] == ["run:1"]
    assert set(grouped) == set(ARCHITECTURES)


# ------------------------------------------------------------------ AppTest
def run_page(lang: str = "en", **state) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT)
    at.session_state["lang"] = lang
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def predictions(at: AppTest) -> list[str]:
    return [m.value for m in at.metric if m.label == translate("sandbox.result.prediction", "en")]


def image_captions(at: AppTest) -> list[str]:
    found = []

    def walk(node):
        if getattr(node, "type", None) == "image":
            found.extend(img.caption for img in node.proto.imgs)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_drawing_mode_starts_with_a_hint_not_a_prediction(lang):
    at = run_page(lang)
    assert at.title[0].value == translate("sandbox.title", lang)
    assert translate("sandbox.empty", lang) in [i.value for i in at.info]
    assert not at.metric


def test_a_test_digit_gets_three_answers_and_its_true_label(full_mnist):
    at = run_page(sb_input="random", sb_random_index=0)  # test digit 0 is a 7
    assert predictions(at) == ["7"] * len(shipped_models())
    assert translate("sandbox.result.correct", "en", label=7) in [m.value for m in at.markdown]
    assert translate("sandbox.agree", "en", digit=7) in [s.value for s in at.success]
    # the other test digit button draws a new one
    at.button(key="sb_next").click().run()
    assert not at.exception
    assert len(predictions(at)) == len(shipped_models())


def test_fgsm_slider_attacks_each_model_and_answers_change(full_mnist):
    if len(shipped_models()) < 3:
        pytest.fail("the three shipped models are part of the package; some are missing")
    at = run_page(sb_input="random", sb_random_index=0)
    clean = {m.label: m.value for m in at.metric}
    confidences = [m.value for m in at.metric if m.label == "Confidence"]
    at.slider(key="sb_epsilon").set_value(0.25).run()
    assert not at.exception
    attacked_caption = translate("sandbox.result.attacked", "en", epsilon=0.25)
    assert image_captions(at).count(attacked_caption) == 3  # every model shows the input it was attacked with
    assert translate("sandbox.robust.shared_caption", "en") not in image_captions(at)  # nothing else changed
    attacked = [m.value for m in at.metric if m.label == "Confidence"]
    assert attacked != confidences
    # at eps=0.25 at least one architecture is fooled on this digit (measured: all three are)
    assert any(p != "7" for p in predictions(at)), (clean, predictions(at))
    at.button(key="sb_reset").click().run()
    assert predictions(at) == ["7", "7", "7"]


def test_geometric_disturbances_show_the_disturbed_digit():
    at = run_page(sb_input="random", sb_random_index=0)
    at.slider(key="sb_rotation").set_value(45).run()
    at.slider(key="sb_thickness").set_value(2).run()
    assert not at.exception
    assert translate("sandbox.robust.shared_caption", "en") in image_captions(at)
    assert len(predictions(at)) == len(shipped_models())


def test_an_unreadable_checkpoint_is_a_message_not_a_crash(tmp_path, monkeypatch):
    import bigmodels.app.sandbox as sandbox_ui
    from bigmodels.runs.sources import ModelSource

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    fake = [ModelSource("run:broken", "cnn", "broken run", broken, "run")]
    monkeypatch.setattr(sandbox_ui, "list_sources", lambda lang="en": fake)
    at = run_page(sb_input="random", sb_random_index=0)
    errors = [e.value for e in at.error]
    assert any("not a readable checkpoint" in e for e in errors), errors
    # the architectures with no source say how to get one
    infos = [i.value for i in at.info]
    assert translate("sandbox.model.none", "en", model=translate("sandbox.arch.lstm", "en")) in infos


def test_the_chosen_explanation_view_survives_a_new_digit():
    at = run_page(sb_input="random", sb_random_index=0)
    gradcam = translate("sandbox.why.gradcam_caption", "en", digit=7)
    assert gradcam in image_captions(at)
    at.segmented_control(key="sb_view_cnn").set_value("saliency").run()
    at.button(key="sb_next").click().run()  # another digit: st.tabs would fall back to its first tab
    assert not at.exception
    assert at.segmented_control(key="sb_view_cnn").value == "saliency"
    captions = image_captions(at)
    assert any(c.startswith(translate("sandbox.why.saliency_caption", "en", digit=0)[:30]) for c in captions)
    assert not any(c.startswith(gradcam[:30]) for c in captions)  # only the chosen view is drawn


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_an_example_digit_is_the_input_and_an_unsure_model_is_named(lang, full_mnist):
    from bigmodels.analysis.explain import UNSURE_BELOW, answer, unsure
    from bigmodels.app.models import model_for
    from bigmodels.app.sandbox import sources_by_architecture
    from bigmodels.data.digits import first_of_each_class, from_uint8

    index = first_of_each_class(full_mnist.test_labels)[3]
    at = run_page(lang, sb_example=3)
    assert len([m for m in at.metric if m.label == translate("sandbox.result.prediction", lang)]) == 3
    verdicts = {translate("sandbox.result.correct", lang, label=3), translate("sandbox.result.wrong", lang, label=3)}
    assert len([m for m in at.markdown if m.value in verdicts]) == 3  # the example's true label is known
    # whichever models are unsure of this digit, the page names exactly them
    pixels = from_uint8(full_mnist.test_images[index])
    shipped = {arch: group[0] for arch, group in sources_by_architecture().items()}
    answers = {arch: answer(model_for(source), pixels) for arch, source in shipped.items()}
    doubts = unsure(answers)
    texts = [w.value for w in at.warning] + [s.value for s in at.success] + [c.value for c in at.caption]
    for arch in ARCHITECTURES:
        named = translate("sandbox.arch." + arch, lang)
        mentioned = any(named in text and f"{answers[arch].confidence:.0%}" in text for text in texts)
        assert mentioned == (arch in doubts), (arch, answers[arch].confidence, texts)
    assert all(a.confidence < UNSURE_BELOW for arch, a in answers.items() if arch in doubts)


def test_the_gallery_shows_scores_and_deletes(tmp_path, monkeypatch, full_mnist):
    from bigmodels.data import gallery
    from bigmodels.data.digits import from_uint8

    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path))
    kept = [gallery.add(from_uint8(full_mnist.test_images[k]), int(full_mnist.test_labels[k])) for k in range(3)]
    (gallery.gallery_dir() / "index.json").write_text("{broken")  # rebuilt from the pictures, with a warning
    at = run_page()
    assert translate("sandbox.gallery.rebuilt", "en") in [w.value for w in at.warning]
    accuracy = [m for m in at.metric if m.label == translate("sandbox.gallery.accuracy", "en")]
    assert [m.value for m in accuracy] == ["100%"]  # the shipped CNN reads the first three test digits
    at.button(key=f"sb_del_{kept[0].id}").click().run()
    assert not at.exception
    assert [i.id for i in gallery.load().items] == [k.id for k in kept[1:]]
    # score with another model: every source of every architecture is offered
    at.selectbox(key="sb_gallery_source").set_value("shipped:transformer").run()
    assert not at.exception and len([m for m in at.metric if m.label == translate("sandbox.gallery.accuracy", "en")])


def make_live_run(home, model_state=None, epoch: int = 1):
    """A run that is still training, in the store at ``home``, with an epoch-``epoch`` checkpoint."""
    from bigmodels.models.checkpoints import save_checkpoint
    from bigmodels.models.registry import create_model
    from bigmodels.runs.queue import submit
    from bigmodels.runs.store import RunStore
    from bigmodels.train.config import default_config
    from bigmodels.train.engine import checkpoint_payload

    store = RunStore(home)
    config = default_config("cnn", epochs=5, batch_size=64, train_subset=2000, device="cpu")
    run = submit(store, config).run
    store.claim(run.id, "test", __import__("os").getpid())
    path = store.checkpoint_path(run.id)
    store.set_provenance(run.id, "cpu", "CPU", "test data", {}, None, str(path))
    return store, run, config, path


def next_epoch(store, run, config, path, epoch: int, state_dict=None) -> None:
    """What the worker does after an epoch: replace the checkpoint atomically, record the epoch."""
    from bigmodels.models.checkpoints import save_checkpoint
    from bigmodels.models.registry import create_model
    from bigmodels.train.engine import checkpoint_payload

    torch.manual_seed(epoch)
    model = create_model("cnn")
    if state_dict is not None:
        model.load_state_dict(state_dict)
    save_checkpoint(checkpoint_payload(config, model, []), path)
    store.record_epoch(run.id, {"epoch": epoch, "train_loss": 0.5, "test_loss": 0.4, "test_accuracy": 0.5 + epoch / 10,
                                "samples_per_second": 100.0})


def shipped_cnn_state():
    from bigmodels.models.checkpoints import model_from_checkpoint

    return model_from_checkpoint(weights_path("cnn")).state_dict()


def test_a_live_run_is_offered_and_its_new_epoch_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path))
    store, run, config, path = make_live_run(tmp_path)
    next_epoch(store, run, config, path, 1)
    at = run_page(sb_input="random", sb_random_index=0, sb_source_cnn=f"run:{run.id}")
    captions = [c.value for c in at.caption]
    assert translate("sandbox.card.live", "en", epoch=1) in captions
    assert any(c.startswith(translate("sandbox.live.watching", "en", models="X", seconds=2)[:20]) for c in captions)
    next_epoch(store, run, config, path, 2, shipped_cnn_state())
    at.run()  # what the polling fragment's rerun does
    assert translate("sandbox.card.live", "en", epoch=2) in [c.value for c in at.caption]
    assert predictions(at)[0] == "7"  # the epoch-2 weights (the shipped CNN's) read the 7
    store.finish(run.id, "succeeded")


# ---------------------------------------------------------------- browser
def open_sandbox(app_page, lang: str = "en"):
    page = app_page.open("sandbox", query=f"lang={lang}", timeout=TIMEOUT * 1000)
    # On a busy machine the first script run can start after the harness saw the
    # app idle; wait for the page's own heading, then for the run to finish.
    page.get_by_role("heading", name=translate("sandbox.models.title", lang)).wait_for(timeout=TIMEOUT * 1000)
    app_page.wait_idle(TIMEOUT * 1000)
    return page


def wait_for_predictions(app_page, page, count: int):
    from playwright.sync_api import expect

    label = translate("sandbox.result.prediction", "en")
    metrics = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    expect(metrics).to_have_count(count, timeout=TIMEOUT * 1000)
    app_page.wait_idle(TIMEOUT * 1000)
    return [text.split("\n")[-1].strip() for text in metrics.all_inner_texts()]


def shows(locator) -> None:
    """Wait (a busy machine may start the rerun late) until ``locator`` is visible."""
    from playwright.sync_api import expect

    expect(locator).to_be_visible(timeout=TIMEOUT * 1000)


def tall_screenshot(app_page, name: str):
    app_page.page.set_viewport_size({"width": 1400, "height": 2600})  # the whole page in one picture
    app_page.wait_idle(TIMEOUT * 1000)
    app_page.screenshot(name)


def photo_of_test_digit(digit: torch.Tensor, size=300, canvas=(420, 380)) -> bytes:
    """A photo-like upload: the digit dark on light, off-centre on a bigger page."""
    x = torch.nn.functional.interpolate(digit.float()[None, None], size=(size, size), mode="bilinear")[0, 0]
    page = np.full(canvas, 235, np.uint8)
    page[90:90 + size, 20:20 + size] = (235 - x.numpy() * 200 / 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(page).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@browser
def test_drawing_a_seven_with_the_mouse_gets_three_answers(app_page):
    page = open_sandbox(app_page)
    canvas = page.locator("canvas").last  # fabric's upper canvas takes the pointer events
    canvas.wait_for(timeout=TIMEOUT * 1000)
    box = canvas.bounding_box()
    assert box["width"] >= 250 and box["height"] >= 250
    stroke(page, box, [(70, 60), (210, 60), (140, 240)])  # a 7: the bar, then the stem
    answers = wait_for_predictions(app_page, page, len(shipped_models()))
    assert answers == ["7"] * len(shipped_models()), answers
    shows(page.get_by_text(translate("sandbox.agree", "en", digit=7)))
    tall_screenshot(app_page, "sandbox-drawn-seven")
    # the canvas toolbar's undo takes the stroke back: no ink, so a hint instead of answers
    page.mouse.move(box["x"] + 140, box["y"] + 140)  # the toolbar shows while the pointer is over the canvas
    page.get_by_role("button", name="Undo").click()
    wait_for_predictions(app_page, page, 0)
    shows(page.get_by_text(translate("sandbox.empty", "en")))
    assert app_page.foreign_requests() == []


@browser
def test_clear_button_empties_the_canvas(app_page):
    page = open_sandbox(app_page)
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=TIMEOUT * 1000)
    stroke(page, canvas.bounding_box(), [(140, 40), (140, 240)])  # a 1
    answers = wait_for_predictions(app_page, page, len(shipped_models()))
    assert answers.count("1") >= 2, answers
    page.get_by_role("button", name=translate("sandbox.draw.clear", "en")).click()
    wait_for_predictions(app_page, page, 0)
    shows(page.get_by_text(translate("sandbox.empty", "en")))


@browser
def test_uploading_a_photo_of_a_digit(app_page, full_mnist):
    page = open_sandbox(app_page)
    page.get_by_text(translate("sandbox.input.upload", "en"), exact=True).click()
    app_page.wait_idle(TIMEOUT * 1000)
    index = 1  # a 2
    assert int(full_mnist.test_labels[index]) == 2
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "two.jpg", "mimeType": "image/jpeg",
                "buffer": photo_of_test_digit(full_mnist.test_images[index])}])
    answers = wait_for_predictions(app_page, page, len(shipped_models()))
    assert answers == ["2"] * len(shipped_models()), answers
    # the naive-resize comparison shows both versions and feeds the naive one
    page.get_by_text(translate("sandbox.seen.naive", "en"), exact=True).click()
    app_page.wait_idle(TIMEOUT * 1000)
    shows(page.get_by_text(translate("sandbox.seen.naive_caption", "en")))
    tall_screenshot(app_page, "sandbox-upload-naive")
    assert app_page.foreign_requests() == []


@browser
def test_a_non_image_upload_gets_a_clear_message(app_page):
    page = open_sandbox(app_page, "zh")
    page.get_by_text(translate("sandbox.input.upload", "zh"), exact=True).click()
    app_page.wait_idle(TIMEOUT * 1000)
    # named .png, but text inside: the type is sniffed from the content
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "digit.png", "mimeType": "image/png", "buffer": b"just some notes, not a picture"}])
    app_page.wait_idle(TIMEOUT * 1000)
    message = page.get_by_text(translate("sandbox.upload.error.not_image", "zh"))
    message.wait_for(timeout=TIMEOUT * 1000)
    assert message.is_visible()
    assert page.locator('[data-testid="stMetric"]').count() == 0
    app_page.screenshot("sandbox-not-an-image-zh")


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return (box is not None and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"])


def viewport_screenshot(page, name: str) -> None:
    """What the visitor sees without scrolling (AppPage.screenshot takes the whole page)."""
    from bigmodels.harness.browser import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@browser
@pytest.mark.parametrize("size", [(1280, 720), (1440, 900)])
def test_the_answers_appear_in_view_of_the_canvas(app_page, size):
    """A projector (1280x720) or a laptop (1440x900): draw, and the three answers --
    digit, confidence, latency -- are on screen beside the canvas, no scrolling."""
    from playwright.sync_api import expect

    app_page.page.set_viewport_size({"width": size[0], "height": size[1]})
    page = open_sandbox(app_page)
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=TIMEOUT * 1000)
    stroke(page, canvas.bounding_box(), [(70, 60), (210, 60), (140, 240)])  # a 7
    wait_for_predictions(app_page, page, len(shipped_models()))
    assert page.evaluate("window.scrollY") == 0
    assert in_viewport(page, canvas)
    for arch in shipped_models():
        card = page.locator(f".st-key-sb_card_{arch}")
        expect(card).to_have_count(1)
        for key in ("prediction", "confidence", "latency"):
            metric = card.locator('[data-testid="stMetric"]').filter(has_text=translate(f"sandbox.result.{key}", "en"))
            assert in_viewport(page, metric), (arch, key, metric.bounding_box(), page.viewport_size)
        assert in_viewport(page, card.get_by_text(translate("sandbox.card.shipped", "en")))
    verdicts = page.locator('[data-testid="stAlert"]')
    assert in_viewport(page, verdicts.first)
    viewport_screenshot(page, f"sandbox-{size[0]}x{size[1]}-en")
    if size == (1280, 720):  # the same screen in Chinese: the longer labels still fit
        page = open_sandbox(app_page, "zh")
        canvas = page.locator("canvas").last
        canvas.wait_for(timeout=TIMEOUT * 1000)
        stroke(page, canvas.bounding_box(), [(70, 60), (210, 60), (140, 240)])
        label = translate("sandbox.result.latency", "zh")
        expect(page.locator('[data-testid="stMetric"]').filter(has_text=label)).to_have_count(
            len(shipped_models()), timeout=TIMEOUT * 1000)
        app_page.wait_idle(TIMEOUT * 1000)
        for metric in page.locator('[data-testid="stMetric"]').all():
            assert in_viewport(page, metric)
            value = metric.locator('[data-testid="stMetricValue"]')
            # nothing cut off: the value's text fits its box (no ellipsis)
            assert value.evaluate("e => [e, ...e.querySelectorAll('*')].every(n => n.scrollWidth <= n.clientWidth)"), \
                value.inner_text()
        viewport_screenshot(page, "sandbox-1280x720-zh")


@browser
def test_a_wrong_answer_is_kept_with_its_label_and_can_be_deleted(app_page):
    from bigmodels.data import gallery

    page = open_sandbox(app_page)
    canvas = page.locator("canvas").last
    canvas.wait_for(timeout=TIMEOUT * 1000)
    stroke(page, canvas.bounding_box(), [(140, 40), (140, 240)])  # a 1 -- "it was a 4", says the visitor
    wait_for_predictions(app_page, page, len(shipped_models()))
    before = len(gallery.load(app_page.server.home).items)
    page.get_by_role("button", name=translate("sandbox.gallery.wrong", "en")).click()
    page.locator('[data-testid="stPopoverBody"]').get_by_role("radio", name="4", exact=True).click()  # pills are radios
    app_page.wait_idle(TIMEOUT * 1000)
    page.get_by_role("button", name=translate("sandbox.gallery.keep", "en")).click()
    shows(page.get_by_text(translate("sandbox.gallery.kept", "en", label=4)))
    app_page.wait_idle(TIMEOUT * 1000)
    items = gallery.load(app_page.server.home).items
    assert len(items) == before + 1 and items[-1].label == 4
    assert float(items[-1].pixels.max()) == 1.0  # the 28x28 digit the models saw, not an empty picture
    card = page.locator(f".st-key-sb_gallery_{items[-1].id}")
    shows(card)
    card.get_by_role("button", name=translate("sandbox.gallery.delete", "en")).click()
    app_page.wait_idle(TIMEOUT * 1000)
    assert [i.id for i in gallery.load(app_page.server.home).items] == [i.id for i in items[:-1]]
    assert page.locator(f".st-key-sb_gallery_{items[-1].id}").count() == 0


@browser
def test_watching_a_run_learn_refreshes_without_a_click(app_page):
    """A run still training is picked in the sidebar; when its next epoch replaces
    the checkpoint, the label and the answer change by themselves."""
    from playwright.sync_api import expect

    store, run, config, path = make_live_run(app_page.server.home)
    try:
        next_epoch(store, run, config, path, 1)  # epoch 1: untrained weights
        page = open_sandbox(app_page)
        source = page.get_by_label(translate("sandbox.model.source", "en"), exact=True).first  # the CNN's
        source.click()
        page.keyboard.type(run.id)
        page.get_by_role("option", name=f"run {run.id}", exact=False).wait_for(timeout=30_000)
        page.keyboard.press("Enter")
        app_page.wait_idle(TIMEOUT * 1000)
        card = page.locator(".st-key-sb_card_cnn")
        page.locator(".st-key-sb_example").get_by_role("radio", name="7", exact=True).click()
        shows(card.get_by_text(translate("sandbox.card.live", "en", epoch=1)))
        expect(card.locator('[data-testid="stMetric"]')).to_have_count(3, timeout=TIMEOUT * 1000)
        first = card.locator('[data-testid="stMetric"]').all_inner_texts()
        next_epoch(store, run, config, path, 2, shipped_cnn_state())  # epoch 2: weights that read a 7
        shows(card.get_by_text(translate("sandbox.card.live", "en", epoch=2)))  # no click: the poll saw it
        expect(card.locator('[data-testid="stMetric"]').first).to_contain_text("7", timeout=TIMEOUT * 1000)
        assert card.locator('[data-testid="stMetric"]').all_inner_texts() != first
        app_page.screenshot("sandbox-live-epoch-2")
    finally:
        store.finish(run.id, "succeeded")
