"""Home: what bigmodels is, which device and data it runs on, and the shipped models."""
import streamlit as st

from bigmodels.app.routing import page_link
from bigmodels.reports.comparison import device_text
from bigmodels.app.session import current_data, data_dir_choice, device_summary, language, model_title, set_data_dir, t
from bigmodels.data.mnist import ENV_DATA_DIR, has_mnist
from bigmodels.models.shipped import load_metrics


# Each part of the app, in the order a first visit goes, and the pages it opens.
PARTS = (("sandbox", ("sandbox",)), ("comparison", ("comparison",)), ("launcher", ("launcher",)),
         ("lab", ("lab",)), ("service", ("service",)), ("writeups", ("cases", "challenges")))


def parts() -> None:
    """Where to start, and one card per part of the app, each a link to its page(s)."""
    st.markdown(t("home.start"))
    for row in (PARTS[:3], PARTS[3:]):
        for col, (part, pages) in zip(st.columns(3), row):
            with col.container(border=True, height="stretch"):
                st.subheader(t(f"home.part.{part}.title"))
                st.write(t(f"home.part.{part}.body"))
                for page in pages:
                    page_link(page, t("home.part.open", page=t(f"nav.{page}")))


def device_panel() -> None:
    st.subheader(t("home.device.title"))
    device, description = device_summary()
    st.caption(t("home.device.label"))
    st.markdown(f"**{device_text(description, language())}**", help=t("home.device.help", device=device))


def data_panel() -> None:
    """Which MNIST this session reads, and a form to name another folder."""
    st.subheader(t("home.data.title"))
    data, error = current_data()
    if error:
        st.error(t("home.data.error", error=error))
    if data.is_sample:
        st.warning(t("home.data.sample", n_train=len(data.train_labels), n_test=len(data.test_labels)))
    else:
        st.success(t("home.data.full", location=data.location, n_train=len(data.train_labels),
                     n_test=len(data.test_labels)))
    with st.expander(t("home.data.change")):
        with st.form("data_dir_form"):
            folder = st.text_input(t("home.data.folder"), value=data_dir_choice() or "",
                                   help=t("home.data.folder_help", env=ENV_DATA_DIR))
            if st.form_submit_button(t("home.data.use")):
                folder = folder.strip()
                if folder and not has_mnist(folder):
                    st.error(t("home.data.not_found", folder=folder))
                else:
                    set_data_dir(folder or None)
                    st.rerun()


def shipped_models() -> None:
    """The shipped models' measured numbers, from metrics.json."""
    st.subheader(t("home.models.title"))
    try:
        metrics = load_metrics()
    except Exception as exc:  # an unreadable metrics file must not take the home page down
        metrics = {}
        st.error(t("home.models.unreadable", error=exc))
    if not metrics:
        st.info(t("home.models.none"))
        return
    rows = [{
        "model": model_title(name),
        "accuracy": 100 * m["accuracy"],
        "parameters": m["parameters"],
        "latency": m.get("latency_ms_batch1"),
        "measured": f"{device_text(m.get('device_name', ''), language())} · {m.get('measured_at', '')[:10]}",
    } for name, m in metrics.items()]
    col = st.column_config
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "model": col.TextColumn(t("home.models.col.model")),
        "accuracy": col.NumberColumn(t("home.models.col.accuracy"), format="%.2f%%"),
        "parameters": col.NumberColumn(t("home.models.col.params"), format="localized"),
        "latency": col.NumberColumn(t("home.models.col.latency"), format="%.2f"),
        "measured": col.TextColumn(t("home.models.col.measured")),
    })
    st.caption(t("home.models.caption"))


def main() -> None:
    st.title(t("home.title"))
    st.write(t("home.intro", article=t("app.source_article")))
    parts()
    st.divider()
    left, right = st.columns(2)
    with left:
        device_panel()
    with right:
        data_panel()
    st.divider()
    shipped_models()


main()
