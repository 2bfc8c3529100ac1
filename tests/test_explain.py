import pytest
import torch
from torch import nn

from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.analysis.explain import (
    Answer, CNNExplanation, LSTMExplanation, TransformerExplanation, _encoder_layer_with_weights,
    _feature_to_input_map, answer, believed_digits, disagree, dissenters, explain, explain_cnn, explain_lstm, read_digit, rollout,
    settled_row, transformer_attention, UNSURE_BELOW, unsure, verdict,
)
from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.data.digits import from_uint8, to_model_input
from bigmodels.models.registry import create_model
from bigmodels.models.shipped import weights_path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Batch-1 work on tiny tensors: on a shared CPU, torch's second thread only
    spin-waits (an LSTM answer: seconds instead of milliseconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shipped(name):
    if not weights_path(name).is_file():
        pytest.fail(f"the shipped {name} weights are missing")
    return model_from_checkpoint(weights_path(name))


@pytest.fixture(scope="module")
def digits(full_mnist):
    return from_uint8(full_mnist.test_images[:8]), full_mnist.test_labels[:8]


def random_model(name, **overrides):
    torch.manual_seed(0)
    return create_model(name, **overrides).eval()


# ------------------------------------------------------------------- answer
def test_answer_is_the_models_softmax_with_a_latency(digits):
    model = random_model("cnn")
    pixels = digits[0][0]
    result = answer(model, pixels)
    with torch.no_grad():
        expected = torch.softmax(model(to_model_input(pixels)), 1)[0]
    assert torch.allclose(torch.tensor(result.probabilities), expected, atol=1e-6)
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert result.predicted == int(expected.argmax()) and result.confidence == pytest.approx(float(expected.max()))
    assert result.latency_ms > 0


def test_disagreement_marker():
    seven, one = [0.0] * 10, [0.0] * 10
    seven[7], one[1] = 1.0, 1.0
    a, b = Answer(tuple(seven), 1.0), Answer(tuple(one), 1.0)
    assert not disagree({"cnn": a, "lstm": a, "transformer": a})
    assert disagree({"cnn": a, "lstm": b, "transformer": a})
    assert dissenters({"cnn": a, "lstm": b, "transformer": a}) == {"lstm"}
    assert dissenters({"cnn": a, "lstm": a, "transformer": a}) == set()
    assert dissenters({"cnn": a, "lstm": b}) == set()  # one against one: no majority
    four = [0.0] * 10
    four[4] = 1.0
    c = Answer(tuple(four), 1.0)
    assert dissenters({"cnn": a, "lstm": b, "transformer": c}) == set()


def sure_of(digit: int, p: float) -> Answer:
    """An answer of ``digit`` with probability ``p``, the rest spread evenly."""
    probs = [(1 - p) / 9] * 10
    probs[digit] = p
    return Answer(tuple(probs), 1.0)


def test_agreement_does_not_hide_an_unsure_model():
    """"They agree on 3, but the CNN is only 14% sure": the verdict names it."""
    sure, doubtful = sure_of(3, 0.95), sure_of(3, 0.14)
    found = verdict({"cnn": sure, "lstm": sure, "transformer": sure})
    assert (found.kind, found.digit, found.unsure) == ("agree", 3, {})
    found = verdict({"cnn": doubtful, "lstm": sure, "transformer": sure})
    assert (found.kind, found.digit) == ("agree_unsure", 3)
    assert found.unsure == pytest.approx({"cnn": 0.14})
    found = verdict({"cnn": doubtful, "lstm": sure_of(5, 0.3), "transformer": sure})
    assert found.kind == "disagree" and found.digit is None and set(found.unsure) == {"cnn", "lstm"}
    assert verdict({"cnn": sure}) is None  # one answer: nothing to compare


def test_the_unsure_threshold_is_one_named_constant():
    assert 0.5 <= UNSURE_BELOW < 1
    at = {"cnn": sure_of(3, UNSURE_BELOW), "lstm": sure_of(3, UNSURE_BELOW - 0.01)}
    assert set(unsure(at)) == {"lstm"}  # exactly at the threshold counts as sure
    assert unsure(at, threshold=0.99) == pytest.approx({"cnn": UNSURE_BELOW, "lstm": UNSURE_BELOW - 0.01})


# ---------------------------------------------------------------------- CNN
def test_gradcam_grid_lands_on_the_pixels_it_came_from():
    """For LeNet's second conv, check the (scale, offset) mapping against the real
    receptive field: backpropagate one output cell to the input and take the
    centre of the pixels that influence it."""
    model = random_model("cnn")
    layers = list(model.features)
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d))
    scale, offset = _feature_to_input_map(layers[:last_conv + 1])
    x = torch.randn(1, 1, IMAGE_SIZE, IMAGE_SIZE, requires_grad=True)
    out = nn.Sequential(*layers[:last_conv + 1])(x)
    for r, c in [(1, 7), (4, 4), (7, 2)]:  # interior cells: the image edge does not clip their field
        (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), x, retain_graph=True)
        rows = torch.nonzero(grad[0, 0].abs().sum(1) > 0).flatten().float()
        cols = torch.nonzero(grad[0, 0].abs().sum(0) > 0).flatten().float()
        centre_row = (rows.min() + rows.max() + 1) / 2  # continuous coordinates: pixel i spans [i, i+1)
        centre_col = (cols.min() + cols.max() + 1) / 2
        assert scale * centre_row + offset == pytest.approx(r + 0.5)
        assert scale * centre_col + offset == pytest.approx(c + 0.5)


def test_cnn_explanation_shapes_ranges_and_target(digits):
    model = random_model("cnn")
    e = explain_cnn(model, digits[0][0])
    assert isinstance(e, CNNExplanation)
    assert e.grad_cam.shape == e.saliency.shape == (IMAGE_SIZE, IMAGE_SIZE)
    for heat in (e.grad_cam, e.saliency):
        assert heat.min() >= 0 and heat.max() <= 1
    assert e.saliency.max() == pytest.approx(1.0)
    assert e.feature_maps.shape == (model.config.conv_channels[0], IMAGE_SIZE, IMAGE_SIZE)
    assert e.feature_maps.min() >= 0  # after the ReLU
    assert e.target == answer(model, digits[0][0]).predicted
    assert explain_cnn(model, digits[0][0], target=3).target == 3


def test_explanations_leave_no_gradients_on_the_shared_model(digits):
    model = random_model("cnn")
    explain_cnn(model, digits[0][0])
    read_digit(model, digits[0][0], epsilon=0.1)
    assert all(p.grad is None for p in model.parameters())


def test_saliency_is_the_input_gradient_of_the_explained_class(digits):
    model = shipped("cnn")
    pixels = digits[0][0].clone().requires_grad_(True)
    logits = model(to_model_input(pixels))
    (grad,) = torch.autograd.grad(logits[0, 7], pixels)
    e = explain_cnn(model, digits[0][0], target=7)
    # the gradient w.r.t. pixels is the one w.r.t. the normalised input over the std
    assert torch.allclose(e.saliency, grad.abs() / grad.abs().max(), atol=1e-5)
    assert e.target == int(digits[1][0]) == 7  # the shipped CNN reads the first test digit right


# --------------------------------------------------------------------- LSTM
def test_row_beliefs_end_in_the_models_answer(digits):
    model = random_model("lstm")
    e = explain_lstm(model, digits[0][0])
    assert isinstance(e, LSTMExplanation)
    assert e.row_probabilities.shape == (IMAGE_SIZE, 10)
    assert torch.allclose(e.row_probabilities.sum(1), torch.ones(IMAGE_SIZE), atol=1e-5)
    final = torch.tensor(answer(model, digits[0][0]).probabilities)
    assert torch.allclose(e.row_probabilities[-1], final, atol=1e-5)


def test_bidirectional_lstm_gets_no_row_beliefs(digits):
    assert explain_lstm(random_model("lstm", bidirectional=True), digits[0][0]).row_probabilities is None


def test_settled_row():
    def beliefs(guesses):
        return torch.nn.functional.one_hot(torch.tensor(guesses), 10).float()

    assert settled_row(beliefs([1, 1, 7, 7, 7])) == 3
    assert settled_row(beliefs([7, 7, 7])) == 1
    assert settled_row(beliefs([7, 1, 7, 2])) == 4
    assert settled_row(beliefs([7, 1, 7])) == 3


def test_believed_digits_end_with_the_answer():
    def beliefs(guesses):
        return torch.nn.functional.one_hot(torch.tensor(guesses), 10).float()

    assert believed_digits(beliefs([1, 1, 7, 7])) == [1, 7]
    assert believed_digits(beliefs([7, 1, 7])) == [1, 7]
    assert believed_digits(beliefs([0, 1, 2, 3, 4, 5])) == [2, 3, 4, 5]
    assert believed_digits(beliefs([3, 3])) == [3]


# -------------------------------------------------------------- Transformer
@pytest.mark.parametrize("overrides", [{}, {"pooling": "mean"}, {"patch_size": 7, "depth": 2, "heads": 2}])
def test_recomputed_attention_pass_gives_the_models_own_logits(digits, overrides):
    model = random_model("transformer", **overrides)
    for pixels in digits[0][:3]:
        e = transformer_attention(model, pixels)
        with torch.no_grad():
            expected = model(to_model_input(pixels))[0]
        assert torch.allclose(e.logits, expected, atol=1e-5)


def test_post_norm_layers_are_recomputed_too():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=False).eval()
    h = torch.randn(2, 5, 16)
    with torch.no_grad():
        ours, weights = _encoder_layer_with_weights(layer, h)
        assert torch.allclose(ours, layer(h), atol=1e-5)
    assert weights.shape == (2, 2, 5, 5)


def test_attention_maps_are_distributions(digits):
    model = random_model("transformer")
    e = transformer_attention(model, digits[0][0])
    assert isinstance(e, TransformerExplanation)
    c = model.config
    tokens = c.num_patches + 1
    assert e.attention.shape == (c.depth, c.heads, tokens, tokens)
    assert torch.allclose(e.attention.sum(-1), torch.ones(c.depth, c.heads, tokens), atol=1e-5)
    assert e.rollout.shape == e.last_layer.shape == (c.grid, c.grid)
    assert e.rollout.max() == pytest.approx(1.0) and e.rollout.min() >= 0
    assert e.on_pixels(e.rollout).shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert e.on_pixels(e.rollout)[0, 0] == e.rollout[0, 0]


def test_rollout_rules():
    tokens = 4
    uniform = torch.full((2, 3, tokens, tokens), 1 / tokens)
    flow = rollout(uniform)
    assert torch.allclose(flow.sum(-1), torch.ones(tokens))
    identity = torch.eye(tokens).expand(2, 3, tokens, tokens)
    assert torch.allclose(rollout(identity), torch.eye(tokens))  # nobody attends elsewhere: nothing mixes
    # one layer where everyone looks only at token 2: half the flow (the other half is the residual)
    only_two = torch.zeros(1, 1, tokens, tokens)
    only_two[..., 2] = 1
    assert torch.allclose(rollout(only_two)[0], torch.tensor([0.5, 0.0, 0.5, 0.0]))


def test_shipped_transformer_recomputation_matches(digits):
    model = shipped("transformer")
    pixels = digits[0][:4]
    for p in pixels:
        with torch.no_grad():
            expected = model(to_model_input(p))[0]
        assert torch.allclose(transformer_attention(model, p).logits, expected, atol=1e-4)


# ------------------------------------------------------------- one reading
@pytest.mark.parametrize("name,kind", [("cnn", CNNExplanation), ("lstm", LSTMExplanation),
                                       ("transformer", TransformerExplanation)])
def test_read_digit_for_every_architecture(digits, name, kind):
    model = random_model(name)
    pixels = digits[0][1]
    clean = read_digit(model, pixels)
    assert isinstance(clean.explanation, kind) and isinstance(explain(model, pixels), kind)
    assert torch.equal(clean.pixels, pixels)
    attacked = read_digit(model, pixels, epsilon=0.1, with_explanation=False)
    assert attacked.explanation is None
    assert (attacked.pixels - pixels).abs().max() <= 0.1 + 1e-6
    assert not torch.equal(attacked.pixels, pixels)


def test_explain_refuses_unknown_models(digits):
    with pytest.raises(TypeError):
        explain(nn.Linear(784, 10), digits[0][0])
