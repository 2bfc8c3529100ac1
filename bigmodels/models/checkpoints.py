"""Checkpoint files: atomic writes, safe loads, one clear error for bad files.

A checkpoint is a plain dict of tensors and primitives so that it loads with
``torch.load(..., weights_only=True)`` -- the unpickler then refuses any
arbitrary Python object, so a tampered file cannot run code.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bigmodels.models.registry import MAX_PARAMETERS, check_model_settings, model_from_config, parameter_count

FORMAT = "bigmodels-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or is not a bigmodels checkpoint."""


DIGEST_LENGTH = 16  # hex digits: 64 bits, no collision among one home's checkpoints


def checkpoint_digest(path: str | os.PathLike) -> str:
    """The one name of a checkpoint's contents: a SHA-256 of its bytes, read in blocks
    (OSError if it cannot be read). What caches evaluations and measurements and
    versions a deployment: the same bytes, the same digest, wherever it is asked."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:DIGEST_LENGTH]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` (plus the format tag) to ``path`` atomically."""
    import io

    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path}: not a readable checkpoint (not a PyTorch checkpoint archive)")
    try:  # torch.load does not check the archive's CRCs: flipped weight bytes would load silently
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: damaged or altered -- checksum mismatch in {damaged}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported global" in line),
                      str(exc).splitlines()[0])
        raise CheckpointError(f"{path}: refused -- the file contains objects other than tensors and "
                              f"plain data, so it may have been tampered with ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bigmodels checkpoint (missing format tag {FORMAT!r})")
    for key in ("model_name", "model_config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return payload


def model_from_checkpoint(payload_or_path: dict[str, Any] | str | os.PathLike,
                          device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    payload = payload_or_path if isinstance(payload_or_path, dict) else load_checkpoint(payload_or_path)
    name, config = payload["model_name"], payload["model_config"]
    problems = check_model_settings(name, "default", config)
    if problems:
        raise CheckpointError(f"checkpoint does not describe a model this version can build: {problems[0]}")
    # Sized on the meta device first: a tampered config asking for enormous layers is refused
    # before anything is allocated, and one that disagrees with its weights is refused too.
    parameters = parameter_count(name, "default", **config)
    stored = sum(t.numel() for t in payload["state_dict"].values() if isinstance(t, torch.Tensor))
    if parameters > MAX_PARAMETERS or parameters > stored:
        raise CheckpointError(f"checkpoint does not match its model description: the config asks for "
                              f"{parameters:,} parameters, the file holds {stored:,} weights")
    try:
        model = model_from_config(name, config)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"checkpoint does not match its model description: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval()
