"""The comparison page's logic: entries, table, charts, gallery, diagrams,
article fixes, measurement -- and the page itself in Streamlit's AppTest."""
import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from bigmodels.figures import architecture as diagrams
from bigmodels.figures import comparison as cfig
from bigmodels.models.checkpoints import checkpoint_digest
from bigmodels.reports import comparison as cmp
from bigmodels.figures import labels
from bigmodels.analysis.article_fixes import FIXES, REPO_ROOT, fix_locations, locate
from bigmodels.models.checkpoints import save_checkpoint
from bigmodels.data.mnist import ENV_DATA_DIR, MNIST
from bigmodels.base.i18n import LANGUAGES, catalogue, translate
from bigmodels.models.profile import profile_model
from bigmodels.runs.sources import ModelSource
from bigmodels.models.registry import create_model

REPO = Path(__file__).resolve().parent.parent


def tiny_checkpoint(path: Path, name: str = "cnn", **overrides) -> ModelSource:
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    history = [{"epoch": 1, "train_loss": 2.0, "test_loss": 1.9, "test_accuracy": 0.3, "samples_per_second": 10.0,
                "lr": 0.1, "elapsed": 4.0, "memory_bytes": None},
               {"epoch": 2, "train_loss": 1.5, "test_loss": 1.4, "test_accuracy": 0.5, "samples_per_second": 10.0,
                "lr": 0.05, "elapsed": 10.0, "memory_bytes": None}]
    save_checkpoint({"model_name": name, "model_config": dataclasses.asdict(model.config),
                     "state_dict": model.state_dict(), "history": history}, path)
    return ModelSource(f"run:{path.stem}", name, f"{name} test run", path, "run")


def synthetic_entry(label, family_model, accuracy, parameters, latency, predictions=None, origin="shipped"):
    source = ModelSource(f"{origin}:{label}", family_model, label, Path("/nonexistent"), origin)
    metrics = {"accuracy": accuracy, "parameters": parameters, "latency_ms_batch1": latency,
               "throughput_batch256": 1000.0, "macs_per_image": 10 * parameters, "disk_bytes": 4 * parameters,
               "per_class_accuracy": [accuracy] * 10, "confusion": [[100 if i == j else 0 for j in range(10)]
                                                                    for i in range(10)],
               "history": [{"epoch": 1, "test_accuracy": accuracy - 0.01, "train_loss": 0.5},
                           {"epoch": 2, "test_accuracy": accuracy, "train_loss": 0.3}],
               "train_seconds_per_epoch": 12.0, "device_name": "CPU: test", "measured_at": "2026-01-02T03:04:05",
               "data_source": "folder", "predictions": predictions or [], "confidences": [0.9] * len(predictions or [])}
    return cmp.Entry(source, metrics, from_metrics_json=origin == "shipped")


# ------------------------------------------------------------------ pareto
def test_pareto_front_keeps_only_unbeaten_models():
    points = [(1.0, 98.0), (2.0, 99.0), (3.0, 98.5), (0.5, 90.0), (2.0, 97.0), (4.0, 99.5)]
    assert cfig.pareto_front(points) == [3, 0, 1, 5]  # sorted by latency; (3.0, 98.5) and (2.0, 97.0) are beaten
    assert cfig.pareto_front([]) == []
    assert cfig.pareto_front([(1.0, 1.0), (1.0, 1.0)]) == [0]  # a tie is not a second front point


# ----------------------------------------------------------------- gallery
def test_mistakes_are_wrong_answers_most_confident_first():
    labels = torch.tensor([0, 1, 2, 3, 4])
    metrics = {"predictions": [0, 7, 2, 8, 9], "confidences": [0.9, 0.6, 0.8, 0.99, 0.7]}
    found = cmp.mistakes(metrics, labels)
    assert [m.index for m in found] == [3, 4, 1]
    assert found[0] == cmp.Mistake(index=3, true=3, predicted=8, confidence=0.99)
    assert len(cmp.mistakes(metrics, labels, limit=2)) == 2


def test_right_for_one_wrong_for_the_other():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    a = {"predictions": [0, 1, 2, 9, 4, 0], "confidences": [0.9] * 6}
    b = {"predictions": [0, 7, 6, 9, 4, 5], "confidences": [0.5, 0.6, 0.95, 0.9, 0.8, 0.7]}
    shown, total = cmp.right_here_wrong_there(a, b, labels)
    assert total == 2 and [m.index for m in shown] == [2, 1]  # both wrong (3) and b-only right (5) excluded
    assert shown[0].predicted == 6 and shown[0].true == 2
    shown, total = cmp.right_here_wrong_there(b, a, labels)
    assert total == 1 and shown[0].index == 5


def test_digit_tiles_are_dark_on_light_and_unblurred():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[10, 12] = 255
    tile = cfig.digit_tile(image, scale=3)
    assert tile.shape == (84, 84) and tile.dtype.name == "uint8"
    assert tile[0, 0] == 255 and (tile[30:33, 36:39] == 0).all() and tile[33, 36] == 255


def fake_split(n=20, source="folder"):
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    return MNIST(images, labels, images, labels, source=source, location="/x")


def test_predictions_fit_only_their_own_test_split():
    data = fake_split()
    confusion = [[2 if i == j else 0 for j in range(10)] for i in range(10)]
    shipped_like = {"predictions": list(range(20)), "data_source": "folder", "confusion": confusion}
    assert cmp.predictions_fit(shipped_like, data)
    assert not cmp.predictions_fit(shipped_like | {"data_source": "sample"}, data)
    assert not cmp.predictions_fit(shipped_like | {"predictions": list(range(19))}, data)
    wrong_classes = [[3 if i == j else 0 for j in range(10)] for i in range(10)]
    assert not cmp.predictions_fit(shipped_like | {"confusion": wrong_classes}, data)
    evaluated = {"predictions": list(range(20)), "test_set": cmp.split_fingerprint(data)}
    assert cmp.predictions_fit(evaluated, data)
    other = fake_split()
    other.test_images[0, 0, 0] ^= 1  # one pixel differs: another test set
    assert not cmp.predictions_fit(evaluated, other)


# ------------------------------------------------------------------- table
def test_table_rows_take_timings_from_the_right_measurement():
    entry = synthetic_entry("CNN", "cnn", 0.99, 61706, 0.6)
    auto = {"latency_ms_batch1": 9.0, "throughput_batch256": 5.0, "peak_inference_bytes": 10 * 2**20,
            "peak_training_bytes": 20 * 2**20, "device_name": "here", "measured_at": "2026-05-06T00:00:00",
            "requested": False}
    row = cmp.table_rows([entry], {entry.source.id: auto}, "en")[0]
    assert row["latency_ms"] == 0.6 and row["measured"] == "CPU: test · 2026-01-02"  # metrics.json's timing
    assert row["peak_infer_mb"] == 10.0 and row["peak_train_mb"] == 20.0
    assert row["accuracy"] == pytest.approx(99.0) and row["parameters"] == 61706
    assert row["test_data"] == "MNIST, 1,000 digits"  # from the confusion matrix's total
    row = cmp.table_rows([entry], {entry.source.id: auto | {"requested": True}}, "en")[0]
    assert row["latency_ms"] == 9.0 and row["measured"] == "here · 2026-05-06"
    untimed = synthetic_entry("run", "cnn", 0.9, 100, None, origin="run")
    row = cmp.table_rows([untimed], {untimed.source.id: auto}, "en")[0]
    assert row["latency_ms"] == 9.0  # a run's only timing is the one measured here
    row = cmp.table_rows([untimed], {untimed.source.id: None}, "zh")[0]
    assert row["latency_ms"] is None and row["peak_infer_mb"] is None
    assert "MNIST" in row["test_data"] and "张" in row["test_data"]


# ------------------------------------------------------------------ charts
def test_charts_have_one_trace_per_model_and_the_pareto_line():
    entries = [synthetic_entry("CNN", "cnn", 0.99, 61706, 0.6), synthetic_entry("LSTM", "lstm", 0.985, 214282, 1.5),
               synthetic_entry("ViT", "transformer", 0.98, 72074, 2.0)]
    fig = cfig.accuracy_vs_parameters(entries, "en")
    assert len(fig.data) == 3 and fig.layout.xaxis.type == "log"
    fig = cfig.accuracy_vs_latency(entries, {}, "en")
    front = fig.data[-1]
    assert front.mode == "lines" and list(front.x) == [0.6]  # CNN is fastest and most accurate
    fig = cfig.learning_curves(entries, "en")
    assert len(fig.data) == 6 and list(fig.data[0].customdata) == [98.0, 99.0]  # drawn as error rates:
    assert list(fig.data[0].y) == pytest.approx([2.0, 1.0])
    fig = cfig.per_class_figure(entries, "zh")
    assert len(fig.data) == 3 and len(fig.data[0].x) == 10
    fig = cfig.confusion_figure(entries[0], "en")
    assert fig.data[0].text[3][3] == 100 and fig.layout.yaxis.autorange == "reversed"


def test_a_figure_is_built_once_per_distinct_input_and_shared():
    from bigmodels.app import comparison as ui

    entries = [synthetic_entry("CNN", "cnn", 0.99, 61706, 0.6), synthetic_entry("LSTM", "lstm", 0.985, 214282, 1.5)]
    first = ui.figure(cfig.per_class_figure, entries, "en")
    assert first.to_dict() == cfig.per_class_figure(entries, "en").to_dict()  # what building it directly draws
    same = [synthetic_entry("CNN", "cnn", 0.99, 61706, 0.6), synthetic_entry("LSTM", "lstm", 0.985, 214282, 1.5)]
    assert ui.figure(cfig.per_class_figure, same, "en") is first  # equal inputs: the one built before
    changed = [synthetic_entry("CNN", "cnn", 0.97, 61706, 0.6), same[1]]
    assert ui.figure(cfig.per_class_figure, changed, "en") is not first  # a measurement moved: built anew
    assert ui.figure(cfig.per_class_figure, same, "zh") is not first  # another language
    assert ui.figure(cfig.learning_curves, same, "en") is not first  # another figure of the same inputs


def test_point_labels_are_short_and_placed_not_to_overlap():
    # Two points close together: the labels go to different sides instead of on top of each other.
    positions = labels.place_labels([(100, 200), (110, 203), (300, 40)], ["CNN", "LSTM", "ViT"], cfig.PLOT_SIZE, cfig.LABEL_FONT)
    boxes = [labels.label_box(x, y, t, p, cfig.LABEL_FONT) for (x, y), t, p in zip([(100, 200), (110, 203), (300, 40)],
                                                                   ["CNN", "LSTM", "ViT"], positions)]
    assert all(labels.overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:]), positions
    entry = synthetic_entry("LeNet-5 CNN · run r7 · 60.00%", "cnn", 0.6, 61706, 0.6, origin="run")
    assert cfig.short_label(entry) == f"CNN {entry.source.run_id}"


def test_accuracy_axis_is_the_error_rate_on_a_log_scale_written_as_accuracies():
    axis = cfig.accuracy_axis([99.2, 98.4, 60.0], "%")
    assert axis["type"] == "log" and axis["range"][0] > axis["range"][1]  # reversed: better is higher
    assert {"99%", "98%", "90%", "50%"} <= set(axis["ticktext"])
    assert cfig.error_percent(100.0) == cfig.ERROR_FLOOR  # a perfect digit still has a place on the axis


def _px_from_top(value, axis, height=cfig.PLOT_SIZE[1]):
    """Where a value lands, in px from the top of a plot on a reversed log axis
    (``range[0]``, the largest error, is at the bottom)."""
    bottom, top = axis.range
    return (math.log10(value) - top) / (bottom - top) * height


@pytest.fixture(scope="module")
def weak_run(tmp_path_factory, small_mnist):
    """A real weak checkpoint: a CNN trained one epoch on 100 digits, evaluated (and timed) like any run."""
    from bigmodels.train.config import TrainConfig
    from bigmodels.train.engine import train

    path = tmp_path_factory.mktemp("weak") / "weak.pt"
    train(TrainConfig(model="cnn", epochs=1, batch_size=20, train_subset=100, device="cpu"), small_mnist,
          checkpoint_path=path)
    source = ModelSource("run:weak1", "cnn", "LeNet-5 CNN · run weak1", path, "run")
    return cmp.Entry(source, cmp.evaluate_source(source, small_mnist, timing=True), from_metrics_json=False)


def test_a_weak_run_keeps_every_chart_readable(weak_run):
    """Adding a ~60 % run must not squash the shipped models (98.4-99.2 %) into one
    line: each chart keeps them apart by a visible distance, and no labels overlap."""
    from bigmodels.models.shipped import load_metrics
    from bigmodels.runs.sources import shipped_source

    assert weak_run.metrics["accuracy"] < 0.9, weak_run.metrics["accuracy"]  # it is weak
    metrics = load_metrics()
    shipped = [cmp.Entry(shipped_source(name), metrics[name], True) for name in ("cnn", "lstm", "transformer")]
    entries = [*shipped, weak_run]
    best, worst = (100 * max(e.metrics["accuracy"] for e in shipped), 100 * min(e.metrics["accuracy"] for e in shipped))
    for fig in (cfig.accuracy_vs_parameters(entries, "en"), cfig.accuracy_vs_latency(entries, {}, "en")):
        axis = fig.layout.yaxis
        spread = _px_from_top(cfig.error_percent(worst), axis) - _px_from_top(cfig.error_percent(best), axis)
        assert spread > 30, spread  # a linear 57-100 % axis gives them under 5 px
        points = [t for t in fig.data if t.mode == "markers+text"]
        assert len(points) == 4 and {t.text[0] for t in points} == {"CNN", "LSTM", "ViT", "CNN weak1"}
        px = [(cfig._to_px(t.x[0], fig.layout.xaxis.to_plotly_json(), cfig.PLOT_SIZE[0]),
               cfig.PLOT_SIZE[1] - _px_from_top(t.y[0], axis)) for t in points]
        boxes = [labels.label_box(x, y, t.text[0], t.textposition, cfig.LABEL_FONT) for (x, y), t in zip(px, points)]
        assert all(labels.overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert all(-5 <= b[0] and b[2] <= cfig.PLOT_SIZE[0] + 5 for b in boxes)
    per_digit = cfig.per_class_figure(entries, "en")
    axis = per_digit.layout.yaxis
    lows = [min(100 * a for a in e.metrics["per_class_accuracy"]) for e in shipped]
    assert _px_from_top(cfig.error_percent(min(lows)), axis) > 40  # the shipped lines are not pressed to the top
    curves = cfig.learning_curves(entries, "en")
    assert curves.layout.yaxis.type == "log" and curves.layout.yaxis2.type == "log"
    row = cmp.table_rows(entries, {}, "en")[-1]
    assert row["accuracy"] == pytest.approx(100 * weak_run.metrics["accuracy"])


# -------------------------------------------------------------- evaluation
def test_evaluate_source_measures_a_run_like_the_cli(tmp_path, small_mnist):
    source = tiny_checkpoint(tmp_path / "r1.pt")
    metrics = cmp.evaluate_source(source, small_mnist, timing=False)
    n = len(small_mnist.test_labels)
    assert len(metrics["predictions"]) == n == sum(sum(r) for r in metrics["confusion"])
    right = sum(p == y for p, y in zip(metrics["predictions"], small_mnist.test_labels.tolist()))
    assert metrics["accuracy"] == right / n
    assert metrics["parameters"] == 61706 and metrics["macs_per_image"] == 416520
    assert metrics["disk_bytes"] == source.checkpoint.stat().st_size
    assert metrics["train_seconds_per_epoch"] == 5.0  # 10 s elapsed over 2 epochs
    assert metrics["test_set"] == cmp.split_fingerprint(small_mnist) and cmp.predictions_fit(metrics, small_mnist)
    json.dumps(metrics)  # storable as it is


def test_shipped_metrics_must_describe_the_checkpoint(tmp_path):
    source = tiny_checkpoint(tmp_path / "w.pt")
    payload = torch.load(source.checkpoint, weights_only=True)
    metrics = {"model": "cnn", "model_config": payload["model_config"], "history": payload["history"]}
    assert cmp.shipped_metrics_match(source, json.loads(json.dumps(metrics)), payload)
    retrained = json.loads(json.dumps(metrics))
    retrained["history"][-1]["test_accuracy"] = 0.51
    assert not cmp.shipped_metrics_match(source, retrained, payload)
    assert not cmp.shipped_metrics_match(source, metrics | {"model": "lstm"}, payload)


def test_measurement_store_survives_a_damaged_file(tmp_path):
    store = cmp.MeasurementStore(tmp_path / "m.json")
    assert store.get("a") is None and store.error is None
    store.put("a", {"x": 1})
    assert cmp.MeasurementStore(tmp_path / "m.json").get("a") == {"x": 1}
    (tmp_path / "m.json").write_text("{not json")
    damaged = cmp.MeasurementStore(tmp_path / "m.json")
    assert damaged.get("a") is None and "unreadable" in damaged.error
    damaged.put("b", {"y": 2})
    assert cmp.MeasurementStore(tmp_path / "m.json").read() == {"b": {"y": 2}}
    (tmp_path / "m.json").write_text("[1, 2]")
    assert cmp.MeasurementStore(tmp_path / "m.json").read() == {}


def test_remeasure_counts_weights_gradients_and_adam_state(tmp_path):
    """A fresh process measures peak memory; for a LeNet with wide dense layers
    (2.9 M parameters, 11.6 MB of weights, little compute) one Adam step must
    hold at least weights + gradients + two moments, inference the weights."""
    wide = {"fc_sizes": (2048, 1024)}
    source = tiny_checkpoint(tmp_path / "wide.pt", "cnn", **wide)
    weights = profile_model(create_model("cnn", **wide)).weight_bytes
    assert weights > 10 * 2**20
    result = cmp.remeasure(source, repeats=5)
    assert result["fingerprint"] == checkpoint_digest(source.checkpoint)
    if cmp.peak_memory_supported():
        assert result["peak_inference_bytes"] >= weights
        assert result["peak_training_bytes"] >= 4 * weights
        assert result["peak_training_bytes"] < 40 * weights  # a measurement, not the whole process
        assert result["infer_batch"] == cmp.INFER_BATCH and "VmHWM" in result["memory_method"]
    assert result["latency_ms_batch1"] > 0 and result["throughput_batch256"] > 0
    assert result["device"] == "cpu" and result["measured_at"]


def test_remeasure_refuses_a_bad_checkpoint_before_starting(tmp_path):
    from bigmodels.models.checkpoints import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        cmp.remeasure(ModelSource("run:bad", "cnn", "bad", bad, "run"))


# -------------------------------------------------------------- diagrams
@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
def test_block_diagram_is_drawn_from_the_profile(name):
    model = create_model(name)
    profile = profile_model(model)
    svg = diagrams.block_diagram_svg(profile.layers, profile.parameters, "Diagram & <title>")
    root = ET.fromstring(svg)  # well-formed, self-contained SVG
    assert root.tag.endswith("svg")
    text = "".join(root.itertext())
    for layer in profile.layers:
        assert layer.name in text and diagrams.shape_text(layer.output_shape) in text
        if layer.parameters:
            assert f"{layer.parameters:,}" in text
    assert "Diagram & <title>" in text
    loose = profile.parameters - sum(layer.parameters for layer in profile.layers)
    if loose:
        assert f"+ {loose:,}" in text
    if name == "transformer":
        assert loose == model.pos_embed.numel() + model.cls_token.numel()


def test_cnn_receptive_fields_are_walked_from_the_modules():
    fields = diagrams.receptive_fields(create_model("cnn"))
    assert [f["size"] for f in fields] == [5, 6, 14, 16]  # conv 5x5, pool, conv 5x5 at stride 2, pool
    assert [f["jump"] for f in fields] == [1, 2, 2, 4]
    wide = diagrams.receptive_fields(create_model("cnn", kernel_size=3))
    assert wide[0]["size"] == 3


def test_what_the_models_compute_on_a_digit(full_mnist):
    image, label = full_mnist.test_images[0], int(full_mnist.test_labels[0])
    cnn, lstm, vit = create_model("cnn"), create_model("lstm"), create_model("transformer")
    maps = diagrams.first_conv_maps(cnn, image)
    assert maps.shape == (6, 28, 28) and (maps >= 0).all()
    beliefs = diagrams.row_beliefs(lstm, image)
    assert beliefs.shape == (28, 10)
    from bigmodels.data.mnist import normalize
    with torch.no_grad():
        final = torch.softmax(lstm(normalize(image[None])), -1)[0].numpy()
    assert abs(beliefs[-1] - final).max() < 1e-5  # the last row's belief is the model's answer
    maps = diagrams.attention_maps(vit, image)
    assert len(maps) == vit.config.depth and maps[0].shape == (50, 50)
    assert torch.allclose(maps[-1].sum(-1), torch.ones(50), atol=1e-5)
    attention = diagrams.class_token_attention(vit, image)
    assert attention.shape == (7, 7) and 0 < attention.sum() <= 1 + 1e-5
    assert diagrams.ink_centre(image) != (0, 0)
    labels = {k: k for k in ("digit", "filter", "belief", "rows_read", "probability", "patches", "attention")}
    labels |= {"true": "true {digit}", "guess": "guess {digit}"}
    assert len(diagrams.cnn_figure(image, cnn, labels).data) == 7  # digit + 6 feature maps
    assert len(diagrams.lstm_figure(image, beliefs, label, labels).data) in (2, 3)
    assert len(diagrams.transformer_figure(image, attention, 4, labels).data) == 2


def test_attention_maps_follow_the_encoder_exactly(full_mnist):
    """Running the layers one by one (as attention_maps does) must give the encoder's own output."""
    from bigmodels.data.mnist import normalize

    vit = create_model("transformer").eval()
    x = vit.tokens(normalize(full_mnist.test_images[:1]))
    with torch.no_grad():
        by_layer = x
        for layer in vit.encoder.layers:
            by_layer = layer(by_layer)
        torch.testing.assert_close(by_layer, vit.encoder(x))


# ----------------------------------------------------------- article fixes
def test_fix_locations_point_at_the_real_lines():
    for fix_id, where in fix_locations().items():
        lines = (REPO_ROOT / where.path).read_text().splitlines()
        assert "\n".join(lines[where.first_line - 1:where.last_line]) == where.snippet, fix_id
        fix = next(f for f in FIXES if f.id == fix_id)
        assert fix.marker in where.snippet
    with pytest.raises(LookupError):
        locate(create_model, "no such line anywhere")


def test_the_article_patterns_really_fail():
    checks = {fix.id: fix.check() for fix in FIXES}
    outcome = {k: dataclasses.replace(v, article=str(v.article), bigmodels=str(v.bigmodels)) for k, v in checks.items()}
    assert "`NameError" in outcome["imports"].article
    assert "784 time steps" in outcome["lstm_input"].article and "28 time steps" in outcome["lstm_input"].bigmodels
    assert "`AttributeError" in outcome["positional_encoding"].article
    vit = create_model("transformer")
    assert "4 units wide" in outcome["feedforward"].article
    assert f"{int(vit.config.dim * vit.config.mlp_ratio)} units wide" in outcome["feedforward"].bigmodels
    assert "400x120" in outcome["flatten"].article and "(16, 5, 5)" in outcome["flatten"].bigmodels
    # The crashes are flagged as the expected failures; the design flaws run.
    assert {k for k, v in checks.items() if v.article_failed} == {"imports", "positional_encoding", "flatten"}
    for lang in LANGUAGES:  # each outcome reads in both languages
        assert all(v.article.text(lang) and v.bigmodels.text(lang) for v in checks.values())
    assert "个时间步" in checks["lstm_input"].article.text("zh")


def test_every_fix_has_text_in_both_languages():
    for lang in LANGUAGES:
        entries = catalogue(lang)
        for fix in FIXES:
            for part in ("title", "problem", "fix"):
                assert entries[f"comparison.fix.{fix.id}.{part}"], (lang, fix.id, part)


# -------------------------------------------------------------- the page
@pytest.fixture
def page_env(tmp_path, monkeypatch):
    from tests.conftest import mnist_dir

    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path))
    if mnist_dir() is not None:
        monkeypatch.setenv(ENV_DATA_DIR, str(mnist_dir()))
    return tmp_path


def run_page(section=None, timeout=300):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "pages" / "comparison.py"), default_timeout=timeout)
    at.run()
    if section:
        at.radio(key="comparison_section").set_value(section).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_page_reports_a_failed_measurement_and_stops_waiting(page_env, monkeypatch):
    """When measuring fails, the page says so once and does not retry in a loop."""
    from bigmodels.app import comparison as comparison_ui
    from bigmodels.models.shipped import available

    if not available():
        pytest.fail("the shipped weights are missing")
    calls = []

    def failing(source, device="cpu"):
        calls.append(source.id)
        raise RuntimeError("no measuring in this test")

    monkeypatch.setattr(cmp, "remeasure", failing)
    comparison_ui.jobs.clear()
    at = run_page()
    for _ in range(5):
        comparison_ui.jobs().drain(timeout=120)
        at.run()
        if not any("Working in the background" in i.value for i in at.info):
            break
    warnings = [w.value for w in at.warning]
    assert any("no measuring in this test" in w for w in warnings), warnings
    assert len(calls) == len(set(calls)) == len(available())  # once per model, never retried
    assert len(at.dataframe) == 2  # first what people look for, then the costs
    table = at.dataframe[0].value
    assert len(table) == len(available())
    comparison_ui.jobs.clear()


def test_sections_open_by_link_and_the_link_follows_the_choice(page_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "pages" / "comparison.py"), default_timeout=300)
    at.query_params["section"] = "article"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value.startswith("Architecture comparison")
    assert len(at.code) == 2 * len(FIXES)
    assert any("bigmodels/models/nets.py:" in c.value for c in at.caption)
    at.radio(key="comparison_section").set_value("reading").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.query_params["section"] == ["reading"] or at.query_params["section"] == "reading"
    assert len(at.code) == 0 and any("LeNet-5" in h.value for h in at.subheader)


def test_a_run_still_training_can_be_compared_and_is_followed(page_env, monkeypatch):
    """Watch it learn, on the comparison: a live run is offered with its epoch, and once
    picked the page watches its checkpoint (a new epoch is a new file: re-measured)."""
    from bigmodels.app import comparison as comparison_ui
    from tests.test_sandbox_browser import make_live_run, next_epoch

    store, run, config, path = make_live_run(page_env)
    next_epoch(store, run, config, path, 1)
    monkeypatch.setattr(cmp, "remeasure", lambda source, device="cpu": (_ for _ in ()).throw(RuntimeError("skip")))
    comparison_ui.jobs.clear()
    at = run_page()
    picker = at.multiselect(key="comparison_models")
    assert f"run:{run.id}" in picker.options or any(run.id in o for o in picker.options)
    picker.set_value([*picker.value, f"run:{run.id}"]).run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(c.startswith(translate("comparison.live.watching", "en", runs="X", seconds=2)[:14]) for c in captions)
    assert at.session_state["comparison_live"] and f"run:{run.id}" in at.session_state["comparison_live"]
    store.finish(run.id, "succeeded")
    comparison_ui.jobs.clear()
