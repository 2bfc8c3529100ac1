"""The three architectures that bigmodels compares, as working PyTorch modules.

The source article printed a CNN, an RNN and a Transformer for MNIST that do not
run as written. These are the same three ideas, made correct for 28x28 inputs:

* ``LeNet5``       -- the article's conv 6 -> conv 16 -> fc 120 -> 84 -> 10.
* ``RowLSTM``      -- an LSTM that reads the image one row per time step.
* ``VisionTransformer`` -- a ViT-style encoder over square patches.

Each model takes a float tensor of shape (batch, 1, 28, 28), already normalised,
and returns logits of shape (batch, num_classes). Each has a config dataclass so
that a model is fully described by (name, config) -- which is what checkpoints
store and what the registry builds from.
"""
from __future__ import annotations


from dataclasses import dataclass

import torch
from torch import nn

IMAGE_SIZE = 28
NUM_CLASSES = 10


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# --------------------------------------------------------------------------- CNN
@dataclass(frozen=True)
class CNNConfig:
    conv_channels: tuple[int, ...] = (6, 16)  # LeNet-5's two convolutions
    fc_sizes: tuple[int, ...] = (120, 84)  # LeNet-5's two hidden dense layers
    kernel_size: int = 5
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _check(len(self.conv_channels) >= 1, "cnn: conv_channels needs at least one layer")
        _check(all(c >= 1 for c in self.conv_channels), "cnn: every conv width must be >= 1")
        _check(all(f >= 1 for f in self.fc_sizes), "cnn: every fc width must be >= 1")
        _check(self.kernel_size in (3, 5), "cnn: kernel_size must be 3 or 5")
        _check(0.0 <= self.dropout < 1.0, "cnn: dropout must be in [0, 1)")
        _check(self.feature_size() >= 1, "cnn: too many conv layers for a 28x28 image")

    def feature_size(self) -> int:
        """Spatial side after the conv stack.

        The article's flatten size (16*5*5) assumes LeNet's original 32x32 input.
        Padding the first convolution by k//2 makes a 28x28 digit behave like the
        padded 32x32 one, so the classic 5x5 feature map comes out unchanged.
        Later convolutions are unpadded, as in LeNet.
        """
        side = IMAGE_SIZE
        for i in range(len(self.conv_channels)):
            side = side if i == 0 else side - (self.kernel_size - 1)
            if side < 1:
                return 0
            side //= 2  # 2x2 max-pool
        return side


class LeNet5(nn.Module):
    def __init__(self, config: CNNConfig = CNNConfig(), num_classes: int = NUM_CLASSES):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_ch = 1
        for i, out_ch in enumerate(config.conv_channels):
            pad = config.kernel_size // 2 if i == 0 else 0
            # Pool, then ReLU -- LeNet-5's own order (subsample, then squash). Max-pool and
            # ReLU commute exactly, so this is the same function as ReLU-then-pool, but
            # the ReLU (and its backward) touches 4x fewer values: ~9% of a CPU step.
            layers += [nn.Conv2d(in_ch, out_ch, config.kernel_size, padding=pad), nn.MaxPool2d(2), nn.ReLU()]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        dense: list[nn.Module] = [nn.Flatten()]
        width = in_ch * config.feature_size() ** 2
        for size in config.fc_sizes:
            dense += [nn.Linear(width, size), nn.ReLU()]
            if config.dropout:
                dense.append(nn.Dropout(config.dropout))
            width = size
        dense.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*dense)
        # oneDNN's convolutions run ~1.5x faster forward+backward in NHWC layout on
        # the CPU (measured: 25.7 -> 16.6 ms per LeNet step at batch 128, 2 cores).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.contiguous(memory_format=torch.channels_last)))


# -------------------------------------------------------------------------- LSTM
@dataclass(frozen=True)
class LSTMConfig:
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0
    bidirectional: bool = False

    def __post_init__(self) -> None:
        _check(1 <= self.hidden_size <= 4096, "lstm: hidden_size must be in [1, 4096]")
        _check(1 <= self.num_layers <= 16, "lstm: num_layers must be in [1, 16]")
        _check(0.0 <= self.dropout < 1.0, "lstm: dropout must be in [0, 1)")


class RowLSTM(nn.Module):
    """Reads a digit as a sequence: 28 time steps, each one image row of 28 pixels.

    The article fed the LSTM 1-feature inputs; a row per step is the standard
    MNIST sequence setup and gives the model 28 features per step.
    """

    def __init__(self, config: LSTMConfig = LSTMConfig(), num_classes: int = NUM_CLASSES):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=IMAGE_SIZE,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(config.hidden_size * directions, num_classes)

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], IMAGE_SIZE, IMAGE_SIZE)  # (B, steps=rows, features=cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.rows(x))
        return self.head(out[:, -1])  # classify from the state after the last row

    def forward_per_row(self, x: torch.Tensor) -> torch.Tensor:
        """Logits after every row, shape (B, 28, classes): what the model believes
        as it reads the digit top to bottom. Only meaningful one-directional."""
        out, _ = self.lstm(self.rows(x))
        return self.head(out)


# ------------------------------------------------------------------- Transformer
@dataclass(frozen=True)
class TransformerConfig:
    # A CPU-sized default: 4x4 patches (49 tokens + class token) matter more on
    # MNIST than width or depth; 48 wide x 3 deep trains in minutes on 2 cores.
    patch_size: int = 4
    dim: int = 48
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    pooling: str = "cls"  # "cls" token or "mean" over patches

    def __post_init__(self) -> None:
        _check(self.patch_size in (1, 2, 4, 7, 14, 28), "transformer: patch_size must divide 28")
        _check(1 <= self.dim <= 4096, "transformer: dim must be in [1, 4096]")
        _check(1 <= self.depth <= 48, "transformer: depth must be in [1, 48]")
        _check(self.heads >= 1 and self.dim % self.heads == 0, "transformer: dim must be divisible by heads")
        _check(0.25 <= self.mlp_ratio <= 8, "transformer: mlp_ratio must be in [0.25, 8]")
        _check(0.0 <= self.dropout < 1.0, "transformer: dropout must be in [0, 1)")
        _check(self.pooling in ("cls", "mean"), "transformer: pooling must be 'cls' or 'mean'")

    @property
    def num_patches(self) -> int:
        return (IMAGE_SIZE // self.patch_size) ** 2

    @property
    def grid(self) -> int:
        return IMAGE_SIZE // self.patch_size


class VisionTransformer(nn.Module):
    """A small ViT: patchify with a strided conv, add learned positions, encode.

    The article used a positional-encoding class that torch does not have, and
    passed the layer count as ``dim_feedforward``. Here positions are a learned
    parameter (as in ViT) and the feed-forward width is ``mlp_ratio * dim``.
    """

    def __init__(self, config: TransformerConfig = TransformerConfig(), num_classes: int = NUM_CLASSES):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = nn.Conv2d(1, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        tokens = c.num_patches + (1 if c.pooling == "cls" else 0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.pooling == "cls" else None
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, c.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=c.dim,
            nhead=c.heads,
            dim_feedforward=int(c.dim * c.mlp_ratio),
            dropout=c.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without warm-up tricks
        )
        # enable_nested_tensor only matters for padded batches, which we never have.
        self.encoder = nn.TransformerEncoder(layer, num_layers=c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, patches, dim)
        if self.cls_token is not None:
            t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        return t + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.encoder(self.tokens(x)))
        pooled = h[:, 0] if self.cls_token is not None else h.mean(dim=1)
        return self.head(pooled)


def init_weights_(model: nn.Module) -> None:
    """Truncated-normal init for the ViT's token parameters (matches timm)."""
    if isinstance(model, VisionTransformer):
        nn.init.trunc_normal_(model.pos_embed, std=0.02)
        if model.cls_token is not None:
            nn.init.trunc_normal_(model.cls_token, std=0.02)


__all__ = [
    "CNNConfig", "LeNet5", "LSTMConfig", "RowLSTM", "TransformerConfig", "VisionTransformer",
    "IMAGE_SIZE", "NUM_CLASSES", "init_weights_",
]
