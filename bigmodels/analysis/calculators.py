"""Back-of-the-envelope calculators for the cost of large models.

Pure functions, no Streamlit. Every formula states where it comes from; the
figures they are checked against live in ``tests/test_calculators.py``.

Training compute
    C ≈ 6·N·D floating-point operations for a dense transformer with N
    parameters trained on D tokens: about 2·N·D for the forward pass and
    4·N·D for the backward pass (Kaplan et al. 2020, "Scaling Laws for Neural
    Language Models", arXiv:2001.08361, section 2.1; used unchanged by Hoffmann
    et al. 2022, "Training Compute-Optimal Large Language Models",
    arXiv:2203.15556). It ignores attention's sequence-length term, which is
    small for large models. For a mixture-of-experts model N is the number of
    parameters *activated* per token.

GPU time
    GPU-seconds = C / (peak FLOP/s × MFU). MFU, "model FLOPs utilisation", is
    the fraction of the accelerator's peak that the training run achieves
    (Chowdhery et al. 2022, "PaLM", arXiv:2204.02311, section 4.1; Meta reports
    38–43 % for Llama 3.1 405B, arXiv:2407.21783). Peak rates are NVIDIA's
    datasheet dense BF16 Tensor Core figures (the datasheets print the rate
    *with* 2:4 sparsity, which is twice the dense rate).

Memory
    Weights: N × bytes per parameter of the storage type.
    Mixed-precision Adam training: 16 bytes per parameter — 2 (bf16/fp16
    weights) + 2 (bf16/fp16 gradients) + 4 (fp32 master weights) + 4 (Adam
    first moment) + 4 (Adam second moment), the "2Ψ + 2Ψ + 12Ψ = 16Ψ" of
    Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training
    Trillion Parameter Models", arXiv:1910.02054, section 3.1. Keeping the
    gradients in fp32 makes it 18 bytes. Activations, temporary buffers and
    fragmentation come on top and are not counted.
    KV cache at inference: 2 (keys and values) × layers × KV heads × head
    dimension × sequence length × batch × bytes per element (Kwon et al. 2023,
    "Efficient Memory Management for Large Language Model Serving with
    PagedAttention", arXiv:2309.06180, section 3, which works the formula for
    OPT-13B: 2 × 5120 × 40 × 2 bytes = 800 KB per token). With grouped-query
    attention the KV heads are fewer than the query heads.

Errors
    A bad input raises ``ConfigError`` (a ``ValueError``) whose problem is a
    catalogue key and its values (``challenges.calc.problem.*``), so the page
    shows it in the reader's language; ``str()`` is the English text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from bigmodels.base.problems import ConfigError, Key, Problem, show_value

__all__ = [
    "ACCELERATORS",
    "DTYPE_BYTES",
    "TRAINING_CONVENTIONS",
    "Accelerator",
    "TrainingEstimate",
    "InferenceMemory",
    "training_flops",
    "gpu_hours",
    "estimate_training",
    "weights_bytes",
    "training_state_bytes",
    "kv_cache_bytes",
    "inference_memory",
    "gpus_needed",
    "cost_per_million_predictions",
]

#: Bytes per element for the storage types the calculators accept.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "int8": 1.0,
    "int4": 0.5,
}


@dataclass(frozen=True)
class Accelerator:
    """One accelerator as its maker's datasheet describes it."""

    key: str
    name: str
    peak_bf16_dense_tflops: float
    memory_gb: float
    source_title: str
    source_url: str

    @property
    def peak_flops_per_second(self) -> float:
        return self.peak_bf16_dense_tflops * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


#: NVIDIA's datasheet figures. The datasheets print BF16 Tensor Core rates
#: with 2:4 structured sparsity (A100: 624 TFLOPS, H100 SXM and H200 SXM:
#: 1,979 TFLOPS); the dense rate used for training is half of that.
ACCELERATORS: dict[str, Accelerator] = {a.key: a for a in (
    # key, name, dense BF16 TFLOPS, memory GB, datasheet
    Accelerator("A100", "NVIDIA A100 SXM 80GB", 312.0, 80.0, "NVIDIA A100 Tensor Core GPU datasheet",
                "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
    Accelerator("H100", "NVIDIA H100 SXM 80GB", 989.0, 80.0, "NVIDIA H100 Tensor Core GPU datasheet",
                "https://www.nvidia.com/en-us/data-center/h100/"),
    Accelerator("H200", "NVIDIA H200 SXM 141GB", 989.0, 141.0, "NVIDIA H200 Tensor Core GPU datasheet",
                "https://www.nvidia.com/en-us/data-center/h200/"),
)}


@dataclass(frozen=True)
class TrainingConvention:
    key: str
    breakdown: tuple[tuple[str, float], ...]  # (what, bytes per parameter)

    @property
    def bytes_per_param(self) -> float:
        return sum(b for _, b in self.breakdown)

    @classmethod
    def of(cls, key: str, **bytes_per_param: float) -> "TrainingConvention":
        return cls(key, tuple(bytes_per_param.items()))


#: Bytes of model state per parameter during training, activations excluded.
TRAINING_CONVENTIONS: dict[str, TrainingConvention] = {c.key: c for c in (
    # Rajbhandari et al. 2020 (ZeRO), section 3.1: 2Ψ + 2Ψ + 12Ψ = 16Ψ.
    TrainingConvention.of("mixed_adam", weights_16bit=2.0, grads_16bit=2.0, master_fp32=4.0, adam_m_fp32=4.0,
                          adam_v_fp32=4.0),
    # Same, with gradients accumulated in fp32: 18 bytes.
    TrainingConvention.of("mixed_adam_fp32_grads", weights_16bit=2.0, grads_fp32=4.0, master_fp32=4.0,
                          adam_m_fp32=4.0, adam_v_fp32=4.0),
    # Plain fp32 training with Adam: weights, gradients and two moments, 16 bytes.
    TrainingConvention.of("fp32_adam", weights_fp32=4.0, grads_fp32=4.0, adam_m_fp32=4.0, adam_v_fp32=4.0),
)}


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------

def _problem(name: str, kind: str, value: object, **more: object) -> ConfigError:
    """A bad input as a catalogue key and its values (``challenges.calc.problem.<kind>``),
    so the page shows it in the reader's language; ``str()`` is the English text."""
    return ConfigError([Problem.of(f"challenges.calc.problem.{kind}", field=Key(f"challenges.calc.field.{name}"),
                                   name=name, value=show_value(value), **more)])


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _problem(name, "number", value)
    return float(value)


def _positive(name: str, value: object) -> float:
    number = _number(name, value)
    if not math.isfinite(number) or number <= 0:
        raise _problem(name, "positive", value)
    return number


def _non_negative(name: str, value: object) -> float:
    number = _number(name, value)
    if not math.isfinite(number) or number < 0:
        raise _problem(name, "non_negative", value)
    return number


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Real) or int(value) != value:
        raise _problem(name, "whole", value)
    if value < 1:
        raise _problem(name, "at_least_one", value)
    return int(value)


def _one_of(name: str, value: object, choices: dict):
    try:
        return choices[value]
    except (KeyError, TypeError):
        raise _problem(name, "one_of", value, choices=", ".join(choices)) from None


def _dtype(name: str, dtype: str) -> float:
    return _one_of(name, dtype, DTYPE_BYTES)


def _accelerator(accelerator: str | Accelerator) -> Accelerator:
    if isinstance(accelerator, Accelerator):
        return accelerator
    return _one_of("accelerator", accelerator, ACCELERATORS)


def _mfu(mfu: object) -> float:
    value = _positive("mfu", mfu)
    if value > 1:
        raise _problem("mfu", "fraction", mfu)
    return value


# --------------------------------------------------------------------------
# training compute
# --------------------------------------------------------------------------

def training_flops(n_params: float, n_tokens: float) -> float:
    """C = 6·N·D (Kaplan et al. 2020, section 2.1).

    >>> f"{training_flops(175e9, 300e9):.3g}"   # GPT-3: the paper reports 3.14e23
    '3.15e+23'
    """
    return 6.0 * _positive("n_params", n_params) * _positive("n_tokens", n_tokens)


def gpu_hours(flops: float, accelerator: str | Accelerator, mfu: float) -> float:
    """GPU-hours = C / (peak FLOP/s × MFU × 3600 s)."""
    acc = _accelerator(accelerator)
    return _positive("flops", flops) / (acc.peak_flops_per_second * _mfu(mfu) * 3600.0)


@dataclass(frozen=True)
class TrainingEstimate:
    flops: float
    accelerator: Accelerator
    mfu: float
    gpu_hours: float
    n_gpus: int
    price_per_gpu_hour: float

    @property
    def gpu_days(self) -> float:
        return self.gpu_hours / 24.0

    @property
    def wall_clock_days(self) -> float:
        """Days of training if the work is spread perfectly over ``n_gpus``."""
        return self.gpu_days / self.n_gpus

    @property
    def cost(self) -> float:
        """Rental cost in the currency of ``price_per_gpu_hour``."""
        return self.gpu_hours * self.price_per_gpu_hour


def estimate_training(
    n_params: float,
    n_tokens: float,
    accelerator: str | Accelerator = "H100",
    mfu: float = 0.4,
    price_per_gpu_hour: float = 2.0,
    n_gpus: int = 1,
) -> TrainingEstimate:
    """Compute, GPU time and rental cost of one training run.

    ``price_per_gpu_hour`` is the user's own figure (cloud prices vary by
    provider, region and contract); 0 is allowed for owned hardware.
    """
    flops = training_flops(n_params, n_tokens)
    acc = _accelerator(accelerator)
    return TrainingEstimate(
        flops=flops,
        accelerator=acc,
        mfu=_mfu(mfu),
        gpu_hours=gpu_hours(flops, acc, mfu),
        n_gpus=_positive_int("n_gpus", n_gpus),
        price_per_gpu_hour=_non_negative("price_per_gpu_hour", price_per_gpu_hour),
    )


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------

def weights_bytes(n_params: float, dtype: str = "bf16") -> float:
    """Bytes to store N parameters in ``dtype`` (fp32 4, fp16/bf16 2, int8 1, int4 0.5)."""
    return _positive("n_params", n_params) * _dtype("dtype", dtype)


def training_state_bytes(n_params: float, convention: str = "mixed_adam") -> float:
    """Bytes of weights, gradients and optimiser state during training.

    ``mixed_adam``: 16 bytes/parameter (ZeRO paper, section 3.1);
    ``mixed_adam_fp32_grads``: 18; ``fp32_adam``: 16. Activations excluded.
    """
    conv = _one_of("convention", convention, TRAINING_CONVENTIONS)
    return _positive("n_params", n_params) * conv.bytes_per_param


def kv_cache_bytes(
    layers: int,
    kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    dtype: str = "bf16",
) -> float:
    """2 · layers · kv_heads · head_dim · seq_len · batch · bytes (Kwon et al. 2023, §3)."""
    return (
        2.0
        * _positive_int("layers", layers)
        * _positive_int("kv_heads", kv_heads)
        * _positive_int("head_dim", head_dim)
        * _positive_int("seq_len", seq_len)
        * _positive_int("batch", batch)
        * _dtype("dtype", dtype)
    )


@dataclass(frozen=True)
class InferenceMemory:
    weights: float
    kv_cache: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache


def inference_memory(
    n_params: float,
    weight_dtype: str,
    layers: int,
    kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    kv_dtype: str = "bf16",
) -> InferenceMemory:
    """Weights plus KV cache; activations and framework overhead not counted."""
    return InferenceMemory(
        weights=weights_bytes(n_params, weight_dtype),
        kv_cache=kv_cache_bytes(layers, kv_heads, head_dim, seq_len, batch, kv_dtype),
    )


def gpus_needed(total_bytes: float, accelerator: str | Accelerator = "H100") -> int:
    """Smallest number of accelerators whose memory adds up to ``total_bytes``
    (a lower bound: real deployments keep headroom for activations)."""
    acc = _accelerator(accelerator)
    return max(1, math.ceil(_positive("total_bytes", total_bytes) / acc.memory_bytes))


# --------------------------------------------------------------------------
# serving cost
# --------------------------------------------------------------------------

def cost_per_million_predictions(predictions_per_second: float, price_per_hour: float) -> float:
    """What a million predictions cost on a device that answers
    ``predictions_per_second`` (measured) and costs ``price_per_hour``:
    price / (rate x 3600 s) x 10^6 -- the device busy the whole hour, as a
    service under steady load keeps it."""
    rate = _positive("predictions_per_second", predictions_per_second)
    price = _non_negative("price_per_device_hour", price_per_hour)
    return price / (rate * 3600.0) * 1e6
