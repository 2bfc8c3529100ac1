"""A small client for the service's API (the standard library's HTTP only):
what the sandbox's "via the API" uses, and the tests."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import torch

from bigmodels.serving.settings import API_PREFIX, REQUEST_TIMEOUT_S
from bigmodels.serving.store import ServiceStore


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no HTTP answer (nothing listening, reset, timed out)
    body: dict
    headers: dict  # names in lower case
    seconds: float  # end to end, as the client measured it


def call(url: str, method: str = "GET", key: str | None = None, body: bytes | None = None,
         content_type: str | None = None, timeout: float = REQUEST_TIMEOUT_S + 5) -> Reply:
    headers = {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status, got = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        raw, status, got = err.read(), err.code, dict(err.headers)
    except (urllib.error.URLError, OSError) as err:  # refused, reset, timed out: no HTTP answer at all
        reason = getattr(err, "reason", err)
        return Reply(0, {"error": "unreachable", "message": str(reason)}, {}, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"error": "not_json", "message": raw[:200].decode("utf-8", "replace")}
    return Reply(status, parsed, {k.lower(): v for k, v in got.items()}, seconds)


def pixels_json(pixels: torch.Tensor | list) -> bytes:
    """One digit (28, 28) or a batch (B, 28, 28) as the API's JSON body."""
    values = pixels.tolist() if isinstance(pixels, torch.Tensor) else pixels
    return json.dumps({"pixels": values}).encode()


def predict_url(base: str, model_id: str) -> str:
    return f"{base.rstrip('/')}{API_PREFIX}/models/{model_id}/predict"


def predict_pixels(base: str, key: str, model_id: str, pixels: torch.Tensor, timeout: float = REQUEST_TIMEOUT_S + 5) -> Reply:
    return call(predict_url(base, model_id), "POST", key, pixels_json(pixels), "application/json", timeout)


def list_models(base: str, key: str) -> Reply:
    return call(f"{base.rstrip('/')}{API_PREFIX}/models", "GET", key)


def deployed_models(home=None) -> tuple[str | None, dict[str, str]]:
    """The service's URL and source id -> model id of what is deployed (from the
    service store: no Ray needed to ask)."""
    store = ServiceStore(home)
    return store.value("url"), {d.source_id: d.model_id for d in store.deployments()}
