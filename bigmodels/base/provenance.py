"""Where a number came from: software versions, git commit, device, date."""
from __future__ import annotations

import datetime as dt
import platform
import subprocess
from pathlib import Path

import torch
import torchvision

from bigmodels import __version__
from bigmodels.base.devices import describe_device

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def software_versions() -> dict[str, str]:
    # str(): torch.__version__ is a TorchVersion object, which a weights_only load refuses
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "bigmodels": __version__}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance(device: str) -> dict:
    return {"device": str(device), "device_name": describe_device(device), "measured_at": now_iso(),
            "git_commit": git_commit(), "versions": software_versions()}
