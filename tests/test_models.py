import pytest
import torch

from bigmodels.models.profile import profile_model, training_memory_bytes
from bigmodels.models.nets import CNNConfig, LeNet5
from bigmodels.models.registry import create_model, get_spec, list_models, make_config


def test_registry_lists_the_three_architectures():
    assert list_models() == ["cnn", "lstm", "transformer"]
    assert {get_spec(n).family for n in list_models()} == {"CNN", "RNN", "Transformer"}


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
@pytest.mark.parametrize("batch", [1, 5])
def test_forward_gives_logits_for_ten_classes(name, batch):
    model = create_model(name).eval()
    out = model(torch.randn(batch, 1, 28, 28))
    assert out.shape == (batch, 10)
    assert torch.isfinite(out).all()


def test_lenet_matches_the_article_layer_sizes():
    model = create_model("cnn")
    # conv1 1->6 5x5 (156) + conv2 6->16 5x5 (2,416) + fc 400->120 (48,120) + 120->84 (10,164) + 84->10 (850)
    assert sum(p.numel() for p in model.parameters()) == 156 + 2416 + 48120 + 10164 + 850
    assert model.classifier[1].in_features == 16 * 5 * 5


def test_lstm_reads_rows_as_time_steps():
    model = create_model("lstm", hidden_size=32, num_layers=3)
    assert model.lstm.input_size == 28 and model.lstm.num_layers == 3
    per_row = model.forward_per_row(torch.randn(2, 1, 28, 28))
    assert per_row.shape == (2, 28, 10)


def test_lstm_last_step_equals_forward():
    model = create_model("lstm").eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model.forward_per_row(x)[:, -1], model(x))


def test_transformer_arguments_are_used_correctly():
    model = create_model("transformer", dim=48, depth=3, heads=6, mlp_ratio=2.0, patch_size=7)
    assert len(model.encoder.layers) == 3
    layer = model.encoder.layers[0]
    assert layer.linear1.out_features == 96  # feed-forward = mlp_ratio * dim, not the layer count
    assert layer.self_attn.num_heads == 6
    assert model.pos_embed.shape == (1, 16 + 1, 48)  # 4x4 patches + class token


def test_transformer_mean_pooling_has_no_class_token():
    model = create_model("transformer", pooling="mean", patch_size=7)
    assert model.cls_token is None and model.pos_embed.shape[1] == 16
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_article_transformer_preset_is_768_wide():
    config = make_config("transformer", "article")
    assert config.dim == 768


@pytest.mark.parametrize("name,bad,message", [
    ("transformer", {"dim": 30, "heads": 4}, "divisible"),
    ("transformer", {"patch_size": 5}, "divide 28"),
    ("lstm", {"hidden_size": 0}, "hidden_size"),
    ("cnn", {"conv_channels": (6, 16, 32, 64)}, "too many conv layers"),
    ("cnn", {"not_a_setting": 1}, "unknown model setting"),
])
def test_bad_settings_are_refused_with_a_clear_message(name, bad, message):
    with pytest.raises(ValueError, match=message):
        create_model(name, **bad)


def test_unknown_model_and_preset():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("mlp")
    with pytest.raises(ValueError, match="unknown preset"):
        create_model("cnn", preset="huge")


def test_profile_counts_lenet_macs_exactly():
    p = profile_model(create_model("cnn"))
    # conv1 28*28*6*25 + conv2 10*10*16*6*25 + fc 400*120 + 120*84 + 84*10
    assert p.macs_per_image == 117_600 + 240_000 + 48_000 + 10_080 + 840
    assert p.parameters == 61_706
    assert [r.output_shape for r in p.layers if r.kind == "Conv2d"] == [(1, 6, 28, 28), (1, 16, 10, 10)]
    assert p.disk_bytes > p.weight_bytes == 61_706 * 4


def test_profile_counts_the_lstm_recurrence():
    model = create_model("lstm", hidden_size=64, num_layers=2)
    p = profile_model(model)
    h = 64
    expected = 28 * 4 * h * (28 + h) + 28 * 4 * h * (h + h) + h * 10
    assert p.macs_per_image == expected


def test_profile_counts_attention_and_mlp():
    c = make_config("transformer", patch_size=7, dim=32, depth=2, heads=4, mlp_ratio=2.0)
    p = profile_model(create_model("transformer", **vars(c)))
    tokens, d, f = 17, 32, 64
    per_layer = tokens * (3 * d * d + d * d + 2 * d * f) + 2 * tokens * tokens * d
    expected = 16 * 49 * d + 2 * per_layer + d * 10
    assert p.macs_per_image == expected
    assert [r.name for r in p.layers][:3] == ["patch_embed", "encoder.layers.0", "encoder.layers.1"]


def test_training_memory_is_weights_grads_and_adam_moments():
    model = LeNet5(CNNConfig())
    mem = training_memory_bytes(model, "adam")
    assert mem["total"] == 4 * 61_706 * 4
