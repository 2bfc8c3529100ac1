"""Live sandbox: one digit in, and the CNN, the LSTM and the Transformer answer
side by side -- with confidence, latency, and a view of what each looked at.

Laid out around the moment a visitor draws: the canvas, what the models see and
the three answers share the first screen; probability bars, explanations, the
robustness controls and the visitor's gallery of hard digits follow below.
Everything a stroke changes lives in one fragment (``workbench``), so a stroke
reruns only that, not the page; the answers are drawn before the explanations
are computed, and every picture is a PNG cached by its pixels.
"""
import random

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from bigmodels.analysis.explain import (
    LATENCY_REPEATS, UNSURE_BELOW, CNNExplanation, LSTMExplanation, TransformerExplanation,
    dissenters, explain, read_digit, settled_row, verdict,
)
from bigmodels.analysis.perturbations import MAX_EPSILON, MAX_NOISE, MAX_THICKNESS, Perturbation, apply_shared
from bigmodels.app.charts import chart
from bigmodels.app import operator
from bigmodels.app.models import model_for, one_thread
from bigmodels.figures.sandbox import row_beliefs_figure
from bigmodels.app.sandbox import (
    ARCHITECTURES, belief_png, digit_png, heat_png, maps_png, probability_bars, sources_by_architecture,
    visitor_address,
)
from bigmodels.app.live import LIVE_REFRESH_S, checkpoint_signature, follow, follow_sources
from bigmodels.app.sandbox_api import api_comparison
from bigmodels.app.session import current_data, t
from bigmodels.data import gallery
from bigmodels.data.digits import first_of_each_class, from_uint8, prepare
from bigmodels.data.mnist import DataError
from bigmodels.data.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, UploadError, read_image
from bigmodels.models.checkpoints import CheckpointError

CANVAS_SIDE = 280
SEEN_SCALE = 5  # the 28x28 input shown 140 px wide beside the canvas
ROBUST_DEFAULTS = {"sb_rotation": 0, "sb_shift_x": 0, "sb_shift_y": 0, "sb_thickness": 0,
                   "sb_noise": 0.0, "sb_epsilon": 0.0}
PLOT_CONFIG = {"displayModeBar": False}
VIEWS = {"cnn": ("gradcam", "saliency", "maps"), "lstm": ("rows", "curves"),
         "transformer": ("rollout", "last_layer")}
GALLERY_SHOWN = 40  # the newest this many are drawn; the score covers them all
# The first screen is for the answers: Streamlit's default top padding (6 rem) and
# title size would push them below a 720 px projector's fold.
PAGE_CSS = """<style>
[data-testid="stMainBlockContainer"] { padding: 3.2rem 2rem 3rem 2rem; }
[data-testid="stMainBlockContainer"] h1 { font-size: 1.9rem; padding: 0 0 0.2rem 0; }
[class*="st-key-sb_card_"] [data-testid="stMetricValue"] { font-size: 1.6rem; line-height: 1.9rem; }
[class*="st-key-sb_card_"] [data-testid="stMetricLabel"] p { font-size: 0.78rem; }
[class*="st-key-sb_card_"] h4 { font-size: 1.02rem; padding: 0; }
</style>"""


# ------------------------------------------------------------------- input
def clear_canvas() -> None:
    """A new canvas key: a fresh, empty canvas (and no example in its place)."""
    st.session_state["sb_canvas_generation"] = st.session_state.get("sb_canvas_generation", 0) + 1
    st.session_state["sb_canvas_seen"] = None


def clear_everything() -> None:
    clear_canvas()
    st.session_state["sb_example"] = None


def draw():
    """The canvas; its picture (None until something is drawn)."""
    brush = st.session_state.get("sb_brush", 20)
    generation = st.session_state.get("sb_canvas_generation", 0)
    canvas = st_canvas(stroke_width=brush, stroke_color="#000000", background_color="#FFFFFF",
                       width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw",
                       return_image_data=True, key=f"sb_canvas_{generation}")
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.button(t("sandbox.draw.clear"), key="sb_clear", on_click=clear_everything)
        with st.popover(t("sandbox.draw.brush_button"), help=t("sandbox.draw.toolbar")):
            st.slider(t("sandbox.draw.brush"), 6, 40, 20, key="sb_brush")
    image = canvas.image_data
    # New ink replaces an example digit: the visitor has started drawing their own.
    fingerprint = None if image is None else hash(image.tobytes())
    if fingerprint != st.session_state.get("sb_canvas_seen"):
        st.session_state["sb_canvas_seen"] = fingerprint
        if image is not None and prepare(image, "mnist") is not None:
            st.session_state["sb_example"] = None
    return image


def test_data():
    """MNIST's test digits for this session, or (None, message) without them."""
    try:
        data, error = current_data()
    except DataError as exc:  # not even the fallback sample could be read
        return None, str(exc)
    if data is None or not len(data.test_labels):
        return None, error
    return data, error


def examples(data):
    """Example digits to start from (the first test digit of each class); the
    chosen one as (pixels, true label), or (None, None)."""
    indices = first_of_each_class(data.test_labels)
    by_digit = {int(data.test_labels[i]): i for i in indices}
    st.pills(t("sandbox.examples.label"), list(by_digit), key="sb_example", on_change=clear_canvas,
             help=t("sandbox.examples.help"), format_func=str)
    chosen = st.session_state.get("sb_example")
    if chosen not in by_digit:
        return None, None
    index = by_digit[chosen]
    return from_uint8(data.test_images[index]), int(data.test_labels[index])


def upload():
    """An uploaded photo, decoded once per file; None when there is none or it is unreadable."""
    uploaded = st.file_uploader(
        t("sandbox.upload.label"), key="sb_upload", max_upload_size=MAX_UPLOAD_BYTES // 2**20,
        help=t("sandbox.upload.help", limit_mb=MAX_UPLOAD_BYTES // 2**20, limit_mp=f"{MAX_PIXELS / 1e6:.1f}"))
    if uploaded is None:
        return None
    # decoded once per uploaded file, not on every rerun a slider causes
    if st.session_state.get("sb_upload_id") != uploaded.file_id:
        try:
            st.session_state["sb_upload_image"] = (read_image(uploaded.getvalue()), None)
        except UploadError as err:
            st.session_state["sb_upload_image"] = (None, err)
        st.session_state["sb_upload_id"] = uploaded.file_id
    image, err = st.session_state["sb_upload_image"]
    if err is not None:
        st.error(t(f"sandbox.upload.error.{err.reason}", **err.values))
    else:
        st.image(image, caption=t("sandbox.upload.preview"), width=CANVAS_SIDE)
    return image


def random_test_digit(data, error):
    """(pixels, true label) of a test digit picked at random, or (None, None) without data."""
    if data is None:
        st.warning(t("sandbox.random.unavailable", error=error))
        return None, None
    if error:
        st.warning(t("sandbox.random.folder_error", error=error))
    if st.button(t("sandbox.random.next"), key="sb_next") or "sb_random_index" not in st.session_state:
        st.session_state["sb_random_index"] = random.randrange(len(data.test_labels))
    index = st.session_state["sb_random_index"] % len(data.test_labels)
    pixels, true_label = from_uint8(data.test_images[index]), int(data.test_labels[index])
    st.caption(t("sandbox.random.caption", index=index, label=true_label))
    return pixels, true_label


def what_the_models_see(image, naive: bool):
    """The 28x28 pixels made from a drawing or photo (MNIST-style, or naive when
    asked); None when there is no ink to read."""
    mnist_pixels = prepare(image, "mnist")
    if mnist_pixels is None:
        return None
    if naive:
        pixels = prepare(image, "naive")
        a, b = st.columns(2)
        a.image(digit_png(mnist_pixels, 3), caption=t("sandbox.seen.mnist_caption"))
        b.image(digit_png(pixels, 3), caption=t("sandbox.seen.naive_caption"))
        return pixels
    st.image(digit_png(mnist_pixels, SEEN_SCALE), caption=t("sandbox.seen.mnist_caption"))
    return mnist_pixels


def digit_input(input_column, seen_column):
    """The digit (drawn, an example, uploaded or a test digit) and what the models
    see. Returns (pixels or None, true label or None, mode)."""
    image = pixels = true_label = None
    data, error = test_data()
    with input_column:
        mode = st.radio(t("sandbox.input.label"), ["draw", "upload", "random"], horizontal=True,
                        format_func=lambda m: t(f"sandbox.input.{m}"), key="sb_input", label_visibility="collapsed")
        if mode == "draw":
            image = draw()
            if data is not None:
                pixels, true_label = examples(data)
        elif mode == "upload":
            image = upload()
        else:
            pixels, true_label = random_test_digit(data, error)
    with seen_column:
        st.markdown(f"**{t('sandbox.seen.title')}**")
        if pixels is not None:
            caption = "sandbox.seen.example" if mode == "draw" else "sandbox.seen.test_digit"
            st.image(digit_png(pixels, SEEN_SCALE), caption=t(caption, label=true_label))
        elif image is not None:
            naive = st.session_state.get("sb_naive", False)
            pixels = what_the_models_see(image, naive)
            if pixels is not None:
                st.caption(t("sandbox.seen.fed", which=t(f"sandbox.seen.which.{'naive' if naive else 'mnist'}")))
        if mode != "random":
            st.toggle(t("sandbox.seen.naive"), key="sb_naive", help=t("sandbox.seen.naive_help"),
                      disabled=pixels is not None and image is None)
    return pixels, true_label, mode


# -------------------------------------------------------------- robustness
def reset_disturbances() -> None:
    st.session_state.update(ROBUST_DEFAULTS)


def current_disturbance() -> Perturbation:
    """The robustness sliders' values (set before the sliders are drawn further down)."""
    for key, value in ROBUST_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    s = st.session_state
    return Perturbation(rotation=float(s["sb_rotation"]), shift_x=int(s["sb_shift_x"]), shift_y=int(s["sb_shift_y"]),
                        thickness=int(s["sb_thickness"]), noise=float(s["sb_noise"]), epsilon=float(s["sb_epsilon"]))


def disturbance_controls() -> None:
    with st.expander(t("sandbox.robust.title"), expanded=False):
        st.caption(t("sandbox.robust.intro"))
        c1, c2, c3 = st.columns(3)
        c1.slider(t("sandbox.robust.rotation"), -90, 90, step=5, key="sb_rotation")
        c2.slider(t("sandbox.robust.thickness"), -2, MAX_THICKNESS, key="sb_thickness")
        c3.slider(t("sandbox.robust.noise"), 0.0, min(0.6, MAX_NOISE), step=0.05, key="sb_noise")
        c1.slider(t("sandbox.robust.shift_x"), -8, 8, key="sb_shift_x")
        c2.slider(t("sandbox.robust.shift_y"), -8, 8, key="sb_shift_y")
        c3.slider(t("sandbox.robust.epsilon"), 0.0, min(0.3, MAX_EPSILON), step=0.01,
                  key="sb_epsilon", help=t("sandbox.robust.epsilon_help"))
        st.button(t("sandbox.robust.reset"), on_click=reset_disturbances, key="sb_reset")


# ------------------------------------------------------------------ models
def source_label(source) -> str:
    """What the picker shows: stable while a run trains (a picker keeps its choice by this
    text, so a label that changed with each epoch reset the choice); the card says the epoch."""
    return t("sandbox.model.shipped") if source.origin == "shipped" else t("sandbox.card.run", run=source.run_id)


def pick_sources() -> dict:
    """The weights each architecture uses, picked in the sidebar (always in view):
    architecture -> ModelSource, or None when there is none."""
    sources = sources_by_architecture()
    chosen = {}
    with st.sidebar:
        st.markdown(f"**{t('sandbox.model.title')}**", help=t("sandbox.model.help"))
        for arch in ARCHITECTURES:
            options = {s.id: s for s in sources[arch]}
            st.caption(t(f"sandbox.arch.{arch}"))
            if not options:
                chosen[arch] = None
                continue
            picked = st.selectbox(t("sandbox.model.source"), list(options), key=f"sb_source_{arch}",
                                  format_func=lambda i, o=options: source_label(o[i]), label_visibility="collapsed")
            chosen[arch] = options[picked]
    follow_sources("sb")
    return chosen


def card_caption(source) -> str:
    if source.origin == "live":
        return t("sandbox.card.live", epoch=source.epoch)
    if source.origin == "run":
        return t("sandbox.card.run", run=source.run_id)
    return t("sandbox.card.shipped")


def load_models(chosen: dict) -> tuple[dict, dict]:
    """(models, errors) by architecture, from the per-server cache."""
    models, errors = {}, {}
    for arch, source in chosen.items():
        if source is None:
            continue
        try:
            with one_thread():
                models[arch] = model_for(source)
        except (CheckpointError, OSError) as exc:
            errors[arch] = str(exc)
    return models, errors


def readings_for(models: dict, chosen: dict, pixels, epsilon: float) -> dict:
    """Each model's answer to ``pixels`` (its own FGSM attack first, if any),
    remembered for the session: a rerun for the same digit and the same weights
    (a view switched, a picker elsewhere) shows the same answer again."""
    key = (pixels.numpy().tobytes(), epsilon,
           tuple((arch, chosen[arch].id, checkpoint_signature(chosen[arch])) for arch in models))
    memo = st.session_state.get("sb_memo")
    if memo is not None and memo[0] == key:
        return memo[1]
    readings = {}
    with one_thread():
        for arch, model in models.items():
            readings[arch] = read_digit(model, pixels, epsilon, with_explanation=False, repeats=LATENCY_REPEATS)
    st.session_state["sb_memo"] = (key, readings, {})
    return readings


def explanation_for(arch: str, model, reading):
    """The explanation of one reading, computed once per digit (kept beside the memo)."""
    memo = st.session_state.get("sb_memo")
    explained = memo[2] if memo is not None else {}
    if arch not in explained:
        with one_thread():
            explained[arch] = explain(model, reading.pixels)
    return explained[arch]


def answer_card(arch: str, source, reading, error, true_label, odd_one: bool) -> None:
    """One model's answer in one line: digit, confidence, latency, and whether it is sure."""
    with st.container(border=True, horizontal=True, vertical_alignment="center", gap="xsmall",
                      key=f"sb_card_{arch}"):
        st.markdown(f"#### {t(f'sandbox.arch.{arch}')}", width=112)
        if source is None:
            st.info(t("sandbox.model.none", model=t(f"sandbox.arch.{arch}")))
            return
        if error is not None:
            st.error(t("sandbox.model.unreadable", error=error))
            return
        if reading is None:
            st.caption(card_caption(source), width=110)
            return
        answer = reading.answer
        st.metric(t("sandbox.result.prediction"), answer.predicted, width=56)
        st.metric(t("sandbox.result.confidence"), f"{answer.confidence:.1%}", width=84)
        st.metric(t("sandbox.result.latency"), t("sandbox.result.latency_value", ms=answer.latency_ms),
                  help=t("sandbox.result.latency_help", repeats=LATENCY_REPEATS), width=100)
        with st.container(gap=None, width="stretch"):  # wraps under the numbers when the card is narrow
            st.caption(card_caption(source))
            if true_label is not None:
                key = "sandbox.result.correct" if answer.predicted == true_label else "sandbox.result.wrong"
                st.markdown(t(key, label=true_label))
            if answer.confidence < UNSURE_BELOW:
                st.badge(t("sandbox.result.unsure"), color="orange")
            elif odd_one:
                st.badge(t("sandbox.result.odd_one_out"), color="orange")


def show_verdict(answers) -> None:
    """Whether the models agree -- and which of them is unsure, even when they do."""
    found = verdict(answers)
    if found is None:
        return
    doubts = ", ".join(t("sandbox.unsure_item", model=t(f"sandbox.arch.{arch}"), confidence=c)
                       for arch, c in found.unsure.items())
    if found.kind == "agree":
        st.success(t("sandbox.agree", digit=found.digit))
    elif found.kind == "agree_unsure":
        st.warning(t("sandbox.agree_unsure", digit=found.digit, unsure=doubts, threshold=UNSURE_BELOW))
    else:
        st.warning(t("sandbox.disagree", answers=", ".join(
            t("sandbox.answer_item", model=t(f"sandbox.arch.{arch}"), digit=a.predicted)
            for arch, a in answers.items())))
        if doubts:
            st.caption(t("sandbox.disagree_unsure", unsure=doubts, threshold=UNSURE_BELOW))


def tell_it_what_it_was(pixels) -> None:
    """"Wrong? Tell it what it was": keep the digit and its true label in the gallery."""
    with st.popover(t("sandbox.gallery.wrong"), help=t("sandbox.gallery.wrong_help")):
        label = st.pills(t("sandbox.gallery.true_label"), list(range(10)), key="sb_truth", format_func=str)
        if st.button(t("sandbox.gallery.keep"), key="sb_keep", disabled=label is None, type="primary"):
            try:
                # open to every visitor, bounded per visitor; an operator (or anyone, without a token) is not
                visitor = None if operator.may_change() else gallery.visitor_key(visitor_address())
                gallery.add(pixels, int(label), visitor=visitor)
            except (gallery.GalleryError, OSError) as exc:
                reason = exc.reason if isinstance(exc, gallery.GalleryError) else "io"
                limit = gallery.MAX_PER_VISITOR if reason == "visitor_full" else gallery.MAX_ITEMS
                st.error(t(f"sandbox.gallery.error.{reason}", limit=limit))
                return
            st.session_state["sb_kept"] = int(label)
            st.rerun()  # the whole page: the gallery below shows the new digit


# ----------------------------------------------------------------- details
def show_picture(picture: bytes, caption: str) -> None:
    st.image(picture, caption=caption)  # PNG: model pixels stay crisp squares


def probability_text(answer) -> None:
    st.markdown(probability_bars(answer.probabilities, answer.predicted, t("sandbox.result.probabilities")),
                unsafe_allow_html=True)


def rows_chart(beliefs, arch: str) -> None:
    chart(row_beliefs_figure(beliefs, t("sandbox.why.rows_x"), t("sandbox.why.rows_y")), config=PLOT_CONFIG,
          key=f"sb_rows_{arch}")


def show_view(arch: str, view: str, e, shown, model) -> None:
    """The one explanation view chosen for this model (only it is drawn)."""
    if isinstance(e, CNNExplanation):
        if view == "saliency":
            show_picture(heat_png(e.saliency, shown), t("sandbox.why.saliency_caption", digit=e.target))
        elif view == "maps":
            show_picture(maps_png(e.feature_maps), t("sandbox.why.maps_caption", count=len(e.feature_maps)))
        else:
            show_picture(heat_png(e.grad_cam, shown), t("sandbox.why.gradcam_caption", digit=e.target))
    elif isinstance(e, LSTMExplanation):
        if e.row_probabilities is None:
            st.info(t("sandbox.why.rows_bidirectional"))
            return
        beliefs = e.row_probabilities
        if view == "curves":
            rows_chart(beliefs, arch)
        else:
            show_picture(belief_png(beliefs, shown), t("sandbox.why.rows_picture_caption"))
        st.caption(t("sandbox.why.rows_caption", digit=int(beliefs[-1].argmax()), row=settled_row(beliefs)))
    elif isinstance(e, TransformerExplanation):
        if model.cls_token is None:
            st.caption(t("sandbox.why.mean_pooling"))
        if view == "last_layer":
            show_picture(heat_png(e.on_pixels(e.last_layer), shown),
                         t("sandbox.why.last_layer_caption", heads=e.attention.shape[1]))
        else:
            show_picture(heat_png(e.on_pixels(e.rollout), shown),
                         t("sandbox.why.rollout_caption", size=e.patch_size, depth=len(e.attention)))


def details(arch: str, reading, model, epsilon: float) -> None:
    """Below the fold: the probabilities, the attacked input, and why."""
    st.markdown(f"**{t(f'sandbox.arch.{arch}')}**")
    probability_text(reading.answer)
    if epsilon > 0:
        show_picture(digit_png(reading.pixels, 4), t("sandbox.result.attacked", epsilon=epsilon))
    # a keyed control, not st.tabs: the chosen view survives the rerun a stroke causes,
    # and only the chosen view is computed into a picture and drawn
    view = st.segmented_control(t("sandbox.why.title"), VIEWS[arch], key=f"sb_view_{arch}", required=True,
                                default=VIEWS[arch][0], format_func=lambda v: t(f"sandbox.why.{v}"))
    show_view(arch, view or VIEWS[arch][0], explanation_for(arch, model, reading), reading.pixels, model)


# --------------------------------------------------------------- fragments
@st.fragment
def workbench(chosen: dict) -> None:
    """Input, what the models see, the three answers, then why: what a stroke reruns."""
    with st.container(horizontal=True, gap="medium"):  # the canvas and the seen digit at their own widths
        input_column = st.container(width=CANVAS_SIDE + 4)
        seen_column = st.container(width=150)
        answers_column = st.container(width="stretch")
    pixels, true_label, mode = digit_input(input_column, seen_column)
    disturbance = current_disturbance()
    if pixels is not None and disturbance.changes_shared:
        with one_thread():
            pixels = apply_shared(pixels, disturbance)
        seen_column.image(digit_png(pixels, 3), caption=t("sandbox.robust.shared_caption"))
    models, errors = load_models(chosen)
    readings = readings_for(models, chosen, pixels, disturbance.epsilon) if pixels is not None else {}
    answers = {arch: r.answer for arch, r in readings.items()}
    with answers_column:
        st.markdown(f"##### {t('sandbox.models.title')}")
        odd_ones = dissenters(answers)
        for arch in ARCHITECTURES:
            answer_card(arch, chosen.get(arch), readings.get(arch), errors.get(arch), true_label, arch in odd_ones)
        if pixels is None:
            st.info(t("sandbox.empty"))
        show_verdict(answers)
        api_comparison(readings, chosen, ARCHITECTURES)
        if pixels is not None and true_label is None:
            tell_it_what_it_was(pixels)
    disturbance_controls()
    if readings:
        for arch, column in zip(ARCHITECTURES, st.columns(3, gap="medium")):
            if arch in readings:
                with column:
                    details(arch, readings[arch], models[arch], disturbance.epsilon)


def follow_live(chosen: dict) -> None:
    live = follow("sb", chosen)
    if live:
        st.caption(t("sandbox.live.watching", models=", ".join(t(f"sandbox.arch.{a}") for a in live),
                     seconds=LIVE_REFRESH_S))


def delete_hard_digit(item_id: str) -> None:
    """A delete button's callback: before the rerun, so the gallery is drawn without it.
    The gallery is shared: only the operator deletes (asked again here: a forged click
    on a disabled button arrives all the same)."""
    if not operator.may_change():
        st.session_state["sb_gallery_denied"] = True
        return
    try:
        gallery.remove(item_id)
    except (gallery.GalleryError, OSError):
        st.session_state["sb_gallery_error"] = True


def gallery_access() -> bool:
    """The operator-token box, where a token is configured; True if this session may delete."""
    policy = operator.access_policy()
    if not policy.open:
        if policy.problem is None:
            st.text_input(t("sandbox.gallery.token"), type="password", key=operator.TOKEN_KEY, width=360,
                          help=t("sandbox.gallery.token_help", most=gallery.MAX_PER_VISITOR))
        if not operator.may_change():
            st.caption(t("sandbox.gallery.watch_only", most=gallery.MAX_PER_VISITOR))
    return operator.may_change()


@st.fragment
def hard_digits() -> None:
    """The visitor's gallery: every kept digit, deletable, scored by any model."""
    st.subheader(t("sandbox.gallery.title"))
    kept = st.session_state.pop("sb_kept", None)
    if kept is not None:
        st.success(t("sandbox.gallery.kept", label=kept))
    if st.session_state.pop("sb_gallery_error", False):
        st.error(t("sandbox.gallery.error.unknown"))
    if st.session_state.pop("sb_gallery_denied", False):
        st.error(t("sandbox.gallery.error.denied"))
    is_operator = gallery_access()
    try:
        found = gallery.load()
    except OSError as exc:
        st.error(t("sandbox.gallery.error.unreadable", error=exc))
        return
    if found.rebuilt:
        st.warning(t("sandbox.gallery.rebuilt"))
    if found.problems:
        st.warning(t("sandbox.gallery.problems", count=len(found.problems), files=", ".join(found.problems[:5])))
    if not found.items:
        st.caption(t("sandbox.gallery.empty", limit=gallery.MAX_ITEMS))
        return
    every = [s for group in sources_by_architecture().values() for s in group]
    options = {s.id: s for s in every}
    picked = st.selectbox(t("sandbox.gallery.score_with"), list(options), key="sb_gallery_source",
                          format_func=lambda i: options[i].label)
    result = None
    try:
        with one_thread():
            result = gallery.score(model_for(options[picked]), found.items)
    except (CheckpointError, OSError) as exc:
        st.error(t("sandbox.model.unreadable", error=exc))
    if result is not None:
        st.metric(t("sandbox.gallery.accuracy"), f"{result.accuracy:.0%}",
                  help=t("sandbox.gallery.accuracy_help", correct=result.correct, total=len(found.items)))
    newest = list(reversed(list(enumerate(found.items))))[:GALLERY_SHOWN]
    if len(found.items) > GALLERY_SHOWN:
        st.caption(t("sandbox.gallery.only_newest", shown=GALLERY_SHOWN, total=len(found.items)))
    with st.container(horizontal=True, gap="small"):
        for position, item in newest:
            with st.container(border=True, width=118, gap=None, key=f"sb_gallery_{item.id}"):
                if result is None:
                    caption = t("sandbox.gallery.item", label=item.label)
                else:
                    said = result.predictions[position]
                    caption = t("sandbox.gallery.item_scored", label=item.label, said=said,
                                mark="✅" if said == item.label else "❌")
                st.image(digit_png(item.pixels, 3), caption=caption)
                st.button(t("sandbox.gallery.delete"), key=f"sb_del_{item.id}", type="tertiary",
                          on_click=delete_hard_digit, args=(item.id,), disabled=not is_operator)


def main() -> None:
    st.html(PAGE_CSS)
    st.title(t("sandbox.title"))
    st.caption(t("sandbox.intro"))
    chosen = pick_sources()
    follow_live(chosen)
    workbench(chosen)
    st.divider()
    hard_digits()


main()
