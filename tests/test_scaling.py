import dataclasses

import pytest
import torch

from bigmodels.analysis import scaling
from bigmodels.figures import scaling as scaling_figures
from bigmodels.models.profile import profile_model, training_memory_bytes
from bigmodels.models.registry import create_model, make_config

SMALL = [("cnn", 3, 1), ("cnn", 12, 3), ("lstm", 16, 1), ("lstm", 64, 3), ("transformer", 64, 1),
         ("transformer", 128, 2)]


@pytest.mark.parametrize("model,width,depth", SMALL)
def test_counts_equal_those_of_the_ordinary_cpu_module(model, width, depth):
    """The explorer builds on meta (or uninitialised on the CPU); an ordinary,
    initialised module with the same settings must give the same numbers."""
    point = scaling.measure(model, width, depth)
    real = create_model(model, scaling.KNOBS[model].preset, **scaling.knob_overrides(model, width, depth))
    profile = profile_model(real)
    assert next(real.parameters()).device.type == "cpu"
    assert point.parameters == profile.parameters
    assert point.macs_per_image == profile.macs_per_image
    assert point.weight_bytes == profile.weight_bytes
    assert point.training_bytes == training_memory_bytes(real, "adam")["total"]


def test_transformer_is_built_on_meta_and_lstm_on_cpu():
    assert next(scaling.build("transformer", 768, 12).parameters()).is_meta
    lstm = scaling.build("lstm", 32, 1)
    assert not next(lstm.parameters()).is_meta
    assert all(float(p.detach().abs().sum()) == 0 for p in lstm.parameters())  # zeros, not random init


def test_the_article_reference_is_the_article_preset():
    ref = scaling.ARTICLE_REFERENCE
    overrides = scaling.knob_overrides(ref["model"], ref["width"], ref["depth"])
    assert make_config("transformer", "article", **overrides) == make_config("transformer", "article")
    point = scaling.measure("transformer", 768, 12)
    assert point.config["dim"] == 768 and point.config["depth"] == 12 and point.config["heads"] == 12
    # ViT-Base's encoder on 4x4 MNIST patches: ~85 M parameters, counted on the module.
    assert 80e6 < point.parameters < 90e6
    assert point.training_bytes == 4 * point.weight_bytes == 16 * point.parameters


def test_lenet_at_default_knobs_is_lenet():
    knobs = scaling.KNOBS["cnn"]
    point = scaling.measure("cnn", knobs.default_width, knobs.default_depth)
    assert point.parameters == sum(p.numel() for p in create_model("cnn").parameters())
    assert point.config["conv_channels"] == (6, 16) and point.config["fc_sizes"] == (120, 84)


@pytest.mark.parametrize("model", list(scaling.KNOBS))
def test_cost_grows_with_width_and_depth(model):
    knobs = scaling.KNOBS[model]
    by_width = scaling.width_sweep(model, knobs.depths[0])
    by_depth = [scaling.measure(model, knobs.widths[0], d) for d in knobs.depths]
    for points in (by_width, by_depth):
        for key in ("parameters", "macs_per_image", "training_bytes"):
            values = [getattr(p, key) for p in points]
            assert values == sorted(values) and len(set(values)) == len(values), (model, key, values)


def test_transformer_layers_add_the_same_cost_each():
    """Depth grows cost linearly: each encoder layer of a given width is identical."""
    points = [scaling.measure("transformer", 128, d) for d in (1, 2, 4)]
    per_layer = points[1].parameters - points[0].parameters
    assert points[2].parameters - points[1].parameters == 2 * per_layer
    macs = points[1].macs_per_image - points[0].macs_per_image
    assert points[2].macs_per_image - points[1].macs_per_image == 2 * macs


def test_width_grows_parameters_about_quadratically():
    small, large = scaling.measure("lstm", 128, 2), scaling.measure("lstm", 512, 2)
    assert 12 < large.parameters / small.parameters < 17  # 4x the width, ~16x the weights


def test_bad_knobs_are_refused():
    with pytest.raises(ValueError):
        scaling.measure("lstm", 0, 2)
    with pytest.raises(ValueError):
        scaling.measure("cnn", 6, 0)
    with pytest.raises(KeyError):
        scaling.knob_overrides("mlp", 6, 1)


def test_growth_figure_marks_the_model_and_the_reference():
    labels = {"parameters": "P", "macs_per_image": "M", "training_bytes": "T", "width": "w", "depth": "d",
              "current": "now", "reference": "article"}
    current = scaling.measure("cnn", 6, 2)
    fig = scaling_figures.growth_figure(scaling.width_sweep("cnn", 2), scaling.depth_sweep("cnn", 6), current, labels,
                                reference=current)
    names = [trace.name for trace in fig.data]
    assert names.count("article") == 6 and names.count("now") == 6
    layout = fig.layout.to_plotly_json()
    assert all(axis["type"] == "log" for key, axis in layout.items() if key.startswith(("xaxis", "yaxis")))
    elsewhere = scaling.measure("cnn", 12, 3)  # on neither sweep: no star
    fig = scaling_figures.growth_figure(scaling.width_sweep("cnn", 2), scaling.depth_sweep("cnn", 6), current, labels,
                                reference=elsewhere)
    assert "article" not in [trace.name for trace in fig.data]
    sweeps = {m: [scaling.measure(m, w, scaling.KNOBS[m].depths[0]) for w in scaling.KNOBS[m].widths[:3]]
              for m in scaling.KNOBS}
    fig = scaling_figures.architectures_figure(sweeps, {m: m.upper() for m in sweeps}, labels, reference=current)
    assert [trace.name for trace in fig.data] == ["CNN", "LSTM", "TRANSFORMER", "article"]
    assert list(fig.data[2].x) == [p.parameters for p in sweeps["transformer"]]


def test_points_are_plain_data():
    point = scaling.measure("cnn", 6, 2)
    assert dataclasses.asdict(point)["parameters"] == point.parameters
    assert isinstance(point.config["conv_channels"], tuple)
    assert not any(isinstance(v, torch.Tensor) for v in point.config.values())
