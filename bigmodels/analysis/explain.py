"""What each model answers for one digit, how fast, and what it looked at.

One explanation per architecture, each the natural one for how it reads:

* CNN (``LeNet5``) -- Grad-CAM (Selvaraju et al., 2017) over the last
  convolution, mapped back onto the input pixels; input-gradient saliency
  (Simonyan et al., 2014); and the first layer's feature maps.
* LSTM (``RowLSTM``) -- its belief after every row it has read (the classifier
  applied to the hidden state at each step).
* Transformer (``VisionTransformer``) -- the class token's attention over the
  patches in the last layer, and attention rollout over all layers (Abnar &
  Zuidema, 2020). PyTorch's encoder does not return attention weights, so the
  forward pass is recomputed layer by layer with ``need_weights=True``;
  ``transformer_attention`` also returns the logits so a test can prove the
  recomputation is the model's own forward pass.

Inputs are pixels: float (28, 28) in [0, 1] (see ``bigmodels.data.digits``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bigmodels.models.nets import IMAGE_SIZE, LeNet5, RowLSTM, VisionTransformer
from bigmodels.analysis.perturbations import fgsm
from bigmodels.data.digits import enlarge, to_model_input


# ----------------------------------------------------------------- the answer
LATENCY_REPEATS = 3  # forward passes timed per answer; the median is shown
@dataclass(frozen=True)
class Answer:
    probabilities: tuple[float, ...]  # softmax over the ten digits
    latency_ms: float  # median wall time of one batch-1 forward pass

    @property
    def predicted(self) -> int:
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.predicted]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def answer(model: nn.Module, pixels: torch.Tensor, repeats: int = LATENCY_REPEATS) -> Answer:
    """The model's probabilities for one digit, with its latency: the median of
    ``repeats`` timed forward passes (one pass alone is at the mercy of whatever
    else the CPU is doing at that instant)."""
    x = to_model_input(pixels).to(_device(model))
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times, logits = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        logits = model(x)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    probs = torch.softmax(logits.float(), 1)[0].cpu()
    return Answer(tuple(probs.tolist()), statistics.median(times))


def disagree(answers: dict[str, Answer]) -> bool:
    """True when the models do not all predict the same digit."""
    return len({a.predicted for a in answers.values()}) > 1


# A model whose top probability is below this is called unsure, by name, even
# when all three agree: "they agree on 3, but the CNN is only 14% sure". 60%:
# the shipped models give more than that on all but a few percent of MNIST's
# test digits, so below it the answer is a guess worth flagging.
UNSURE_BELOW = 0.6


def unsure(answers: dict[str, Answer], threshold: float = UNSURE_BELOW) -> dict[str, float]:
    """The models less than ``threshold`` sure of their answer, with their confidence."""
    return {name: a.confidence for name, a in answers.items() if a.confidence < threshold}


@dataclass(frozen=True)
class Verdict:
    """What the page says about the answers together."""
    kind: str  # "agree" (all sure), "agree_unsure" (same digit, someone unsure) or "disagree"
    digit: int | None  # the digit they agree on, when they do
    unsure: dict[str, float]  # model -> confidence, for every unsure model


def verdict(answers: dict[str, Answer], threshold: float = UNSURE_BELOW) -> Verdict | None:
    """The verdict on two or more answers (None for fewer: nothing to compare)."""
    if len(answers) < 2:
        return None
    doubts = unsure(answers, threshold)
    if disagree(answers):
        return Verdict("disagree", None, doubts)
    digit = next(iter(answers.values())).predicted
    return Verdict("agree_unsure" if doubts else "agree", digit, doubts)


def dissenters(answers: dict[str, Answer]) -> set[str]:
    """The models outvoted by a majority (two of three say 7, one says 1: that one).
    Nobody is singled out when there is no majority."""
    votes = [a.predicted for a in answers.values()]
    top = max((votes.count(v) for v in votes), default=0)
    if top <= len(votes) / 2:
        return set()
    return {name for name, a in answers.items() if votes.count(a.predicted) < top}


# ------------------------------------------------------------------------- CNN
@dataclass(frozen=True)
class CNNExplanation:
    target: int  # the class explained
    grad_cam: torch.Tensor  # (28, 28) in [0, 1]
    saliency: torch.Tensor  # (28, 28) in [0, 1]
    feature_maps: torch.Tensor  # (channels, 28, 28): first conv layer after ReLU


def _feature_to_input_map(layers: list[nn.Module]) -> tuple[float, float]:
    """(scale, offset) with feature_coord = scale * input_coord + offset, in
    continuous coordinates where pixel i spans [i, i+1). Walks the conv and pool
    layers so that a heat map computed on a small feature grid lands on the input
    pixels it came from (LeNet's unpadded second conv shifts it by 2 cells)."""
    scale, offset = 1.0, 0.0
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k = _pair(layer.kernel_size)[0]
            s = _pair(layer.stride)[0]
            p = _pair(layer.padding)[0]
            # output cell o is centred on input coordinate o*s - p + k/2
            scale, offset = scale / s, (offset + p - k / 2) / s + 0.5
    return scale, offset


def _pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _to_input_grid(cam: torch.Tensor, scale: float, offset: float) -> torch.Tensor:
    """Sample a (h, w) feature-grid map at every input pixel centre (bilinear)."""
    h, w = cam.shape
    centres = torch.arange(IMAGE_SIZE, dtype=cam.dtype) + 0.5
    feat = scale * centres + offset  # feature coordinates of input pixel centres
    gy = (feat / h) * 2 - 1
    gx = (feat / w) * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]  # (1, 28, 28, (x, y))
    return F.grid_sample(cam[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]


def _unit(x: torch.Tensor) -> torch.Tensor:
    peak = x.max()
    return x / peak if float(peak) > 0 else torch.zeros_like(x)


def explain_cnn(model: LeNet5, pixels: torch.Tensor, target: int | None = None) -> CNNExplanation:
    """Grad-CAM on the last conv layer, saliency, and first-layer maps for ``target``
    (default: the predicted class)."""
    layers = list(model.features)
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d))
    x = to_model_input(pixels).to(_device(model)).requires_grad_(True)
    h = x.contiguous(memory_format=torch.channels_last)
    first_maps = cam_input = None
    for i, layer in enumerate(layers):
        h = layer(h)
        if isinstance(layer, nn.Conv2d) and first_maps is None:
            first_maps = F.relu(h)  # the first filters' responses at full 28x28 resolution
        if i == last_conv:
            # Grad-CAM weighs the last conv layer's rectified maps. The model pools before
            # its ReLU (they commute), so rectify here and let the rest of the net run on it.
            h = cam_input = F.relu(h)
    logits = model.classifier(h)
    cls = int(logits.argmax(1)) if target is None else int(target)
    activation_grad, input_grad = torch.autograd.grad(logits[0, cls], (cam_input, x))
    weights = activation_grad.mean(dim=(2, 3), keepdim=True)  # Grad-CAM: channel importance
    cam = F.relu((weights * cam_input).sum(1))[0].detach().float().cpu()
    scale, offset = _feature_to_input_map(layers[:last_conv + 1])
    grad_cam = _unit(_to_input_grid(cam, scale, offset).clamp(min=0))
    saliency = _unit(input_grad[0, 0].abs().float().cpu())
    maps = first_maps[0].detach().float().cpu()
    return CNNExplanation(cls, grad_cam, saliency, maps.contiguous())


# ------------------------------------------------------------------------ LSTM
@dataclass(frozen=True)
class LSTMExplanation:
    row_probabilities: torch.Tensor | None  # (28 rows, 10): belief after each row; None if bidirectional


@torch.inference_mode()
def row_probabilities(model: RowLSTM, pixels: torch.Tensor) -> torch.Tensor:
    """(28 rows, 10): the classifier applied to the LSTM's state after each row."""
    logits = model.forward_per_row(to_model_input(pixels).to(_device(model)))
    return torch.softmax(logits.float(), -1)[0].cpu()


def explain_lstm(model: RowLSTM, pixels: torch.Tensor) -> LSTMExplanation:
    if model.config.bidirectional:
        # a bidirectional LSTM's state at row r has already seen the rows below it
        return LSTMExplanation(None)
    return LSTMExplanation(row_probabilities(model, pixels))


def settled_row(row_probabilities: torch.Tensor) -> int:
    """The first row (1-based) from which the LSTM's running guess equals its final
    answer and never changes again: how much of the digit it needed to read."""
    guesses = row_probabilities.argmax(-1).tolist()
    row = len(guesses)
    while row > 1 and guesses[row - 2] == guesses[-1]:
        row -= 1
    return row


def believed_digits(row_probabilities: torch.Tensor, limit: int = 4) -> list[int]:
    """The digits the LSTM took for its answer at some row, final answer last (drawn
    on top); at most ``limit``, the most recent guesses kept."""
    final = int(row_probabilities[-1].argmax())
    seen: list[int] = []
    for guess in row_probabilities.argmax(-1).tolist():
        if guess in seen:
            seen.remove(guess)
        seen.append(guess)
    seen.remove(final)
    return seen[-(limit - 1):] + [final] if limit > 1 else [final]


# ----------------------------------------------------------------- Transformer
@dataclass(frozen=True)
class TransformerExplanation:
    logits: torch.Tensor  # (10,) from the recomputed forward pass
    attention: torch.Tensor  # (depth, heads, tokens, tokens): each layer's softmax weights
    last_layer: torch.Tensor  # (grid, grid): pooled token's attention to patches, last layer, mean of heads
    rollout: torch.Tensor  # (grid, grid): attention rollout from the pooled token to the patches
    patch_size: int

    def on_pixels(self, grid_map: torch.Tensor) -> torch.Tensor:
        """A (grid, grid) patch map blown up to (28, 28): every pixel takes its patch's value."""
        return enlarge(grid_map, self.patch_size)


def _encoder_layer_with_weights(layer: nn.TransformerEncoderLayer,
                                h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer(h)`` written out, returning (output, attention weights (B, heads, T, T)).
    Follows ``nn.TransformerEncoderLayer.forward`` for both norm placements."""
    def attend(y):
        out, weights = layer.self_attn(y, y, y, need_weights=True, average_attn_weights=False)
        return layer.dropout1(out), weights

    def feed_forward(y):
        return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(y)))))

    if layer.norm_first:
        a, weights = attend(layer.norm1(h))
        h = h + a
        h = h + feed_forward(layer.norm2(h))
    else:
        a, weights = attend(h)
        h = layer.norm1(h + a)
        h = layer.norm2(h + feed_forward(h))
    return h, weights


def rollout(attention: torch.Tensor) -> torch.Tensor:
    """Attention rollout: (depth, heads, T, T) -> (T, T) flow from every token to
    every input token. Heads are averaged, the residual path is added as 0.5 I,
    rows re-normalised, and layers multiplied (Abnar & Zuidema, 2020)."""
    tokens = attention.shape[-1]
    eye = torch.eye(tokens, dtype=attention.dtype)
    flow = eye
    for layer in attention:
        a = 0.5 * layer.mean(0) + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        flow = a @ flow
    return flow


def patch_weights(token_weights: torch.Tensor, has_cls: bool) -> torch.Tensor:
    """(T, T) token-to-token weights -> (patches,): what the token the head reads
    drew from each patch -- the class token's row (its own column dropped), or
    with mean pooling the average over every token's row."""
    return token_weights[0, 1:] if has_cls else token_weights.mean(0)


@torch.inference_mode()
def transformer_attention(model: VisionTransformer, pixels: torch.Tensor) -> TransformerExplanation:
    x = to_model_input(pixels).to(_device(model))
    h = model.tokens(x)
    per_layer = []
    for layer in model.encoder.layers:
        h, weights = _encoder_layer_with_weights(layer, h)
        per_layer.append(weights[0].float().cpu())
    if model.encoder.norm is not None:
        h = model.encoder.norm(h)
    h = model.norm(h)
    has_cls = model.cls_token is not None
    pooled = h[:, 0] if has_cls else h.mean(dim=1)
    logits = model.head(pooled)[0].float().cpu()
    attention = torch.stack(per_layer)  # (depth, heads, T, T)
    flow = rollout(attention)
    grid = model.config.grid
    last, rolled = patch_weights(attention[-1].mean(0), has_cls), patch_weights(flow, has_cls)
    return TransformerExplanation(
        logits=logits, attention=attention,
        last_layer=_unit(last).reshape(grid, grid), rollout=_unit(rolled).reshape(grid, grid),
        patch_size=model.config.patch_size,
    )


# -------------------------------------------------------------------- dispatch
Explanation = CNNExplanation | LSTMExplanation | TransformerExplanation


def explain(model: nn.Module, pixels: torch.Tensor) -> Explanation:
    """The explanation that suits ``model``'s architecture, for its predicted class."""
    if isinstance(model, LeNet5):
        return explain_cnn(model, pixels)
    if isinstance(model, RowLSTM):
        return explain_lstm(model, pixels)
    if isinstance(model, VisionTransformer):
        return transformer_attention(model, pixels)
    raise TypeError(f"no explanation for {type(model).__name__}")


# ---------------------------------------------------------------- one reading
@dataclass(frozen=True)
class Reading:
    """One model's reading of one digit: what it was shown, what it answered, why."""
    pixels: torch.Tensor  # (28, 28) the model's input, after its own FGSM attack if any
    answer: Answer
    explanation: Explanation | None


def read_digit(model: nn.Module, pixels: torch.Tensor, epsilon: float = 0.0,
               with_explanation: bool = True, repeats: int = LATENCY_REPEATS) -> Reading:
    """What the sandbox does per model: attack (FGSM at ``epsilon``, against this
    model's own gradient), answer, explain."""
    shown = fgsm(model, pixels, epsilon) if epsilon > 0 else pixels
    return Reading(shown, answer(model, shown, repeats), explain(model, shown) if with_explanation else None)
