"""Live sandbox: one digit in, and the CNN, the LSTM and the Transformer answer
side by side -- with confidence, latency, and a view of what each looked at."""
import random

import plotly.graph_objects as go
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from bigmodels.models.checkpoints import CheckpointError
from bigmodels.data.mnist import DataError
from bigmodels.analysis.explain import (
    LATENCY_REPEATS, CNNExplanation, LSTMExplanation, TransformerExplanation, believed_digits, disagree, dissenters,
    read_digit, settled_row,
)
from bigmodels.analysis.perturbations import MAX_EPSILON, MAX_NOISE, MAX_THICKNESS, Perturbation, apply_shared
from bigmodels.data.digits import from_uint8, prepare
from bigmodels.app.sandbox import (
    ARCHITECTURES, cached_model, digit_picture, heat_picture, maps_picture, one_thread, sources_by_architecture,
)
from bigmodels.app.session import current_data, t
from bigmodels.data.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, UploadError, read_image

CANVAS_SIDE = 280
ROBUST_DEFAULTS = {"sb_rotation": 0, "sb_shift_x": 0, "sb_shift_y": 0, "sb_thickness": 0,
                   "sb_noise": 0.0, "sb_epsilon": 0.0}
PLOT_CONFIG = {"displayModeBar": False}


# ------------------------------------------------------------------- input
def draw():
    """The canvas; its picture (None until something is drawn)."""
    brush = st.slider(t("sandbox.draw.brush"), 6, 40, 20, key="sb_brush")
    generation = st.session_state.get("sb_canvas_generation", 0)
    canvas = st_canvas(stroke_width=brush, stroke_color="#000000", background_color="#FFFFFF",
                       width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw",
                       return_image_data=True, key=f"sb_canvas_{generation}")
    st.caption(t("sandbox.draw.toolbar"))
    if st.button(t("sandbox.draw.clear"), key="sb_clear"):
        st.session_state["sb_canvas_generation"] = generation + 1  # a new key: a fresh, empty canvas
        st.rerun()
    return canvas.image_data


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


def random_test_digit():
    """(pixels, true label) of a test digit picked at random, or (None, None) without data."""
    try:
        data, error = current_data()
    except DataError as exc:  # not even the fallback sample could be read
        data, error = None, str(exc)
    if data is None or not len(data.test_labels):
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


def what_the_models_see(image):
    """The 28x28 pixels made from a drawing or photo, shown (MNIST-style, or naive
    beside it when asked); None when there is no ink to read."""
    naive = st.toggle(t("sandbox.seen.naive"), key="sb_naive", help=t("sandbox.seen.naive_help"))
    mnist_pixels = prepare(image, "mnist")
    if mnist_pixels is None:
        return None
    if naive:
        pixels = prepare(image, "naive")
        a, b = st.columns(2)
        a.image(digit_picture(mnist_pixels, 5), output_format="PNG", caption=t("sandbox.seen.mnist_caption"))
        b.image(digit_picture(pixels, 5), output_format="PNG", caption=t("sandbox.seen.naive_caption"))
    else:
        pixels = mnist_pixels
        st.image(digit_picture(pixels), output_format="PNG", caption=t("sandbox.seen.mnist_caption"))
    st.caption(t("sandbox.seen.fed", which=t(f"sandbox.seen.which.{'naive' if naive else 'mnist'}")))
    return pixels


def digit_input():
    """The input row: a digit drawn, uploaded or drawn from the test set, and
    what the models will see. Returns (pixels or None, true label or None)."""
    image = None  # the picture to preprocess (canvas or upload)
    pixels = None  # the 28x28 digit the models get
    true_label = None
    left, right = st.columns([3, 2], gap="large")
    with left:
        mode = st.radio(t("sandbox.input.label"), ["draw", "upload", "random"], horizontal=True,
                        format_func=lambda m: t(f"sandbox.input.{m}"), key="sb_input")
        if mode == "draw":
            image = draw()
        elif mode == "upload":
            image = upload()
        else:
            pixels, true_label = random_test_digit()
    with right:
        st.subheader(t("sandbox.seen.title"))
        if mode == "random" and pixels is not None:
            st.image(digit_picture(pixels), output_format="PNG", caption=t("sandbox.seen.test_digit"))
        elif image is not None:
            pixels = what_the_models_see(image)
        if pixels is None:
            st.info(t("sandbox.empty"))
    return pixels, true_label


# -------------------------------------------------------------- robustness
def reset_disturbances() -> None:
    st.session_state.update(ROBUST_DEFAULTS)


def disturbances(pixels):
    """The robustness controls; (pixels with the shared disturbances applied, the Perturbation)."""
    for key, value in ROBUST_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    disturbance = Perturbation()
    with st.expander(t("sandbox.robust.title"), expanded=False):
        st.caption(t("sandbox.robust.intro"))
        controls, preview = st.columns([3, 1])
        with controls:
            c1, c2 = st.columns(2)
            rotation = c1.slider(t("sandbox.robust.rotation"), -90, 90, step=5, key="sb_rotation")
            thickness = c2.slider(t("sandbox.robust.thickness"), -2, MAX_THICKNESS, key="sb_thickness")
            shift_x = c1.slider(t("sandbox.robust.shift_x"), -8, 8, key="sb_shift_x")
            shift_y = c2.slider(t("sandbox.robust.shift_y"), -8, 8, key="sb_shift_y")
            noise = c1.slider(t("sandbox.robust.noise"), 0.0, min(0.6, MAX_NOISE), step=0.05, key="sb_noise")
            epsilon = c2.slider(t("sandbox.robust.epsilon"), 0.0, min(0.3, MAX_EPSILON), step=0.01,
                                key="sb_epsilon", help=t("sandbox.robust.epsilon_help"))
            st.button(t("sandbox.robust.reset"), on_click=reset_disturbances, key="sb_reset")
        disturbance = Perturbation(rotation=float(rotation), shift_x=shift_x, shift_y=shift_y, thickness=thickness,
                                   noise=float(noise), epsilon=float(epsilon))
        if pixels is not None and disturbance.changes_shared:
            with one_thread():
                pixels = apply_shared(pixels, disturbance)
            preview.image(digit_picture(pixels, 4), output_format="PNG", caption=t("sandbox.robust.shared_caption"))
    return pixels, disturbance


# ------------------------------------------------------------------ models
def read_by_each(columns, pixels, epsilon: float):
    """First pass over the columns: pick each architecture's weights and read
    the digit. Returns (readings, models), by architecture."""
    readings, models = {}, {}
    sources = sources_by_architecture()
    for arch, column in columns.items():
        with column:
            st.markdown(f"#### {t(f'sandbox.arch.{arch}')}")
            options = {s.id: s for s in sources[arch]}
            if not options:
                st.info(t("sandbox.model.none", model=t(f"sandbox.arch.{arch}")))
                continue
            chosen = st.selectbox(
                t("sandbox.model.source"), list(options), key=f"sb_source_{arch}",
                format_func=lambda i, o=options: t("sandbox.model.shipped") if o[i].origin == "shipped" else o[i].label)
            try:
                with one_thread():
                    models[arch] = cached_model(options[chosen])
                    if pixels is not None:
                        readings[arch] = read_digit(models[arch], pixels, epsilon, repeats=LATENCY_REPEATS)
            except (CheckpointError, OSError) as exc:
                st.error(t("sandbox.model.unreadable", error=exc))
    return readings, models


def show_verdict(verdict, answers) -> None:
    """Whether the models agree, once at least two have answered."""
    if len(answers) < 2:
        return
    if disagree(answers):
        verdict.warning(t("sandbox.disagree", answers=", ".join(
            t("sandbox.answer_item", model=t(f"sandbox.arch.{arch}"), digit=a.predicted)
            for arch, a in answers.items())))
    else:
        verdict.success(t("sandbox.agree", digit=next(iter(answers.values())).predicted))


# ----------------------------------------------------------------- answers
def show_picture(picture, caption: str) -> None:
    st.image(picture, caption=caption, output_format="PNG")  # PNG: model pixels stay crisp squares


def probability_chart(probabilities, predicted):
    colours = ["#3b5bdb" if d == predicted else "#adb5bd" for d in range(10)]
    fig = go.Figure(go.Bar(x=list(range(10)), y=list(probabilities), marker_color=colours,
                           hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.update_layout(height=190, margin=dict(l=0, r=0, t=24, b=0), bargap=0.15,
                      title=dict(text=t("sandbox.result.probabilities"), font=dict(size=13)),
                      xaxis=dict(tickmode="linear", dtick=1, fixedrange=True),
                      yaxis=dict(range=[0, 1], tickformat=".0%", fixedrange=True))
    return fig


def show_cnn(e: CNNExplanation, shown) -> None:
    grad_tab, saliency_tab, maps_tab = st.tabs(
        [t("sandbox.why.gradcam"), t("sandbox.why.saliency"), t("sandbox.why.maps")])
    with grad_tab:
        show_picture(heat_picture(e.grad_cam, shown), t("sandbox.why.gradcam_caption", digit=e.target))
    with saliency_tab:
        show_picture(heat_picture(e.saliency, shown), t("sandbox.why.saliency_caption", digit=e.target))
    with maps_tab:
        show_picture(maps_picture(e.feature_maps), t("sandbox.why.maps_caption", count=len(e.feature_maps)))


def show_lstm(e: LSTMExplanation, arch: str) -> None:
    if e.row_probabilities is None:
        st.info(t("sandbox.why.rows_bidirectional"))
        return
    beliefs = e.row_probabilities
    final = int(beliefs[-1].argmax())
    rows = list(range(1, beliefs.shape[0] + 1))
    fig = go.Figure()
    earlier = iter(["#f08c00", "#12b886", "#868e96"])  # the final answer gets the bar charts' blue
    for digit in believed_digits(beliefs):  # every digit it believed at some row, the final answer in front
        fig.add_trace(go.Scatter(
            x=rows, y=beliefs[:, digit].tolist(), mode="lines", name=str(digit),
            line=dict(width=3, color="#3b5bdb") if digit == final else dict(width=1.5, color=next(earlier)),
            hovertemplate=t("sandbox.why.rows_x") + " %{x}: P(" + str(digit) + ") = %{y:.1%}<extra></extra>"))
    fig.update_layout(height=230, margin=dict(l=0, r=0, t=6, b=0), legend=dict(title=t("sandbox.why.rows_y")),
                      xaxis=dict(title=t("sandbox.why.rows_x"), range=[1, len(rows)], fixedrange=True),
                      yaxis=dict(range=[0, 1], tickformat=".0%", fixedrange=True))
    st.plotly_chart(fig, config=PLOT_CONFIG, key=f"sb_rows_{arch}")
    st.caption(t("sandbox.why.rows_caption", digit=final, row=settled_row(beliefs)))


def show_transformer(e: TransformerExplanation, shown, model) -> None:
    if model.cls_token is None:
        st.caption(t("sandbox.why.mean_pooling"))
    rollout_tab, last_tab = st.tabs([t("sandbox.why.rollout"), t("sandbox.why.last_layer")])
    with rollout_tab:
        show_picture(heat_picture(e.on_pixels(e.rollout), shown),
                     t("sandbox.why.rollout_caption", size=e.patch_size, depth=len(e.attention)))
    with last_tab:
        show_picture(heat_picture(e.on_pixels(e.last_layer), shown),
                     t("sandbox.why.last_layer_caption", heads=e.attention.shape[1]))


def show_answer(arch: str, reading, model, true_label, odd_one: bool, epsilon: float) -> None:
    """One architecture's answer, its confidence and latency, and why."""
    answer = reading.answer
    a, b = st.columns(2)
    a.metric(t("sandbox.result.prediction"), answer.predicted)
    b.metric(t("sandbox.result.confidence"), f"{answer.confidence:.1%}")
    c, d = st.columns(2)
    c.metric(t("sandbox.result.latency"), t("sandbox.result.latency_value", ms=answer.latency_ms),
             help=t("sandbox.result.latency_help", repeats=LATENCY_REPEATS))
    with d:
        if true_label is not None:
            key = "sandbox.result.correct" if answer.predicted == true_label else "sandbox.result.wrong"
            st.markdown(t(key, label=true_label))
        if odd_one:
            st.badge(t("sandbox.result.odd_one_out"), color="orange")
    st.plotly_chart(probability_chart(answer.probabilities, answer.predicted), config=PLOT_CONFIG,
                    key=f"sb_probs_{arch}")
    if epsilon > 0:
        show_picture(digit_picture(reading.pixels, 4), t("sandbox.result.attacked", epsilon=epsilon))
    st.markdown(f"**{t('sandbox.why.title')}**")
    explanation = reading.explanation
    if isinstance(explanation, CNNExplanation):
        show_cnn(explanation, reading.pixels)
    elif isinstance(explanation, LSTMExplanation):
        show_lstm(explanation, arch)
    elif isinstance(explanation, TransformerExplanation):
        show_transformer(explanation, reading.pixels, model)


def main() -> None:
    st.title(t("sandbox.title"))
    st.write(t("sandbox.intro"))
    pixels, true_label = digit_input()
    pixels, disturbance = disturbances(pixels)
    st.subheader(t("sandbox.models.title"))
    verdict = st.empty()  # filled in once all three have answered
    columns = dict(zip(ARCHITECTURES, st.columns(3, gap="medium")))
    readings, models = read_by_each(columns, pixels, disturbance.epsilon)
    answers = {arch: r.answer for arch, r in readings.items()}
    odd_ones = dissenters(answers)
    show_verdict(verdict, answers)
    for arch, reading in readings.items():  # second pass: the answers, side by side
        with columns[arch]:
            show_answer(arch, reading, models[arch], true_label, arch in odd_ones, disturbance.epsilon)


main()
