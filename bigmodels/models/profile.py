"""What a model costs, measured on the real module: parameters, multiply-
accumulates per image (with PyTorch's FLOP counter), a layer table with output
shapes, and the bytes its weights take on disk and in memory."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

aten = torch.ops.aten


# PyTorch's FLOP counter has no formula for the fused kernels that run an LSTM on
# the CPU (oneDNN) or attention on the CPU; without these, an LSTM counts as
# ~0 FLOPs. Each formula reads the shapes of the tensors the kernel really got.
def _rnn_layer_flops(input_shape, w_ih_shape, w_hh_shape, *args, out_shape=None, **kwargs) -> int:
    steps_times_batch = 1
    for d in input_shape[:-1]:
        steps_times_batch *= d
    gates, inputs = w_ih_shape  # (4H, I)
    hidden = w_hh_shape[1]
    return 2 * steps_times_batch * gates * (inputs + hidden)


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, s_q, d = query_shape
    s_k, d_v = key_shape[-2], value_shape[-1]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


_EXTRA_FORMULAS = {aten.mkldnn_rnn_layer: _rnn_layer_flops}
if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _EXTRA_FORMULAS[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu_flops


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    parameters: int


@dataclass
class ModelProfile:
    parameters: int
    trainable_parameters: int
    macs_per_image: int
    flops_per_image: int
    weight_bytes: int  # in memory, at the parameters' dtype
    disk_bytes: int  # the state_dict as torch.save writes it
    layers: list[LayerRow] = field(default_factory=list)
    flops_by_op: dict[str, int] = field(default_factory=dict)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def state_dict_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _is_display_unit(module: nn.Module) -> bool:
    """Modules shown as one row: leaves, and composite blocks whose inner
    sub-modules are not called as modules (LSTM, encoder layers)."""
    return not list(module.children()) or isinstance(module, (nn.LSTM, nn.TransformerEncoderLayer))


def profile_model(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> ModelProfile:
    """Run one image through ``model`` on the CPU, counting FLOPs and recording each layer's output."""
    was_training = model.training
    model = model.eval()
    device = next(model.parameters()).device
    rows: list[LayerRow] = []
    hooks = []
    inside: set[str] = set()
    for name, module in model.named_modules():
        if not name or any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if _is_display_unit(module):
            inside.add(name)

            def hook(mod, args, output, name=name):
                out = output[0] if isinstance(output, tuple) else output
                rows.append(LayerRow(name, type(mod).__name__, tuple(out.shape),
                                     sum(p.numel() for p in mod.parameters())))

            hooks.append(module.register_forward_hook(hook))
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    try:
        # Grad mode keeps PyTorch off its fused inference fast path for encoder
        # layers, so every matmul is an op the counter sees (the math is identical).
        with counter, torch.enable_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    flops = counter.get_total_flops()
    total, trainable = count_parameters(model)
    by_op = {str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return ModelProfile(
        parameters=total,
        trainable_parameters=trainable,
        macs_per_image=flops // 2 // input_shape[0],
        flops_per_image=flops // input_shape[0],
        weight_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
        disk_bytes=state_dict_bytes(model),
        layers=rows,
        flops_by_op=by_op,
    )


def training_memory_bytes(model: nn.Module, optimizer: str = "adam") -> dict[str, int]:
    """Weights + gradients + optimizer state, in bytes, at the parameters' dtype
    (Adam keeps two moments per parameter, SGD with momentum one)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    states = {"adam": 2, "adamw": 2, "sgd": 1}[optimizer]
    return {"weights": weights, "gradients": weights, "optimizer_state": states * weights,
            "total": (2 + states) * weights}


def training_flops_per_image(model: nn.Module, batch: int = 8) -> int:
    """FLOPs of one training step per image -- forward, loss and backward -- counted
    by PyTorch's FLOP counter on the real module (the optimizer's update is per
    parameter, not per image, and left out, as scaling-law papers do)."""
    was_training = model.training
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    try:
        with counter:
            logits = model.train()(torch.zeros(batch, 1, 28, 28, device=device))
            torch.nn.functional.cross_entropy(logits, torch.zeros(batch, dtype=torch.long, device=device)).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops() // batch
