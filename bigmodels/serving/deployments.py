"""The Ray Serve deployments: one per deployed model source, and the gateway.

(No ``from __future__ import annotations`` here: FastAPI must see the routes' real
annotation objects -- as strings, inside Serve's ingress class, ``Request`` is
not resolved and every call fails validation.)

* ``ModelServer`` -- a model's replicas. Each loads its checkpoint once and
  answers through ``@serve.batch``: concurrent requests are gathered (up to
  ``max_batch_size`` images, waiting at most ``batch_wait_ms``) into one
  forward pass. Both are live settings (Serve's ``user_config``): changing them
  reconfigures the running replicas without a restart.
* ``Gateway`` -- the HTTP API (FastAPI, so OpenAPI docs at ``/docs``): API
  keys, rate limits and quotas, body caps, payload parsing, routing to the
  model's deployment, usage metering and the request log the service page
  draws. Its state is per replica, so it runs as one replica; the models scale.
  It batches too (``gateway_sender``): with a small model the hop from the
  gateway to a replica costs far more than the forward pass, so concurrent
  requests for one model travel to its replicas as one call.

Nothing here is started by importing it: ``bigmodels.serving.service`` binds
and runs these.
"""

import asyncio
import contextlib
import logging
import time

import numpy as np
import torch
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from bigmodels.serving.limits import RateLimiter, retry_after_header
from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.serving.metrics import Record, RequestLog
from bigmodels.serving.payloads import JSON_TYPE, PayloadError, digits_from_body, media_type
from bigmodels.serving.predictor import Predictor
from bigmodels.serving.settings import (
    ALT_KEY_HEADER, API_PREFIX, BODY_READ_TIMEOUT_S, GATEWAY_CPUS, GATEWAY_MAX_ONGOING, INVALID_KEY_DELAY_S,
    KEY_CACHE_S, KEY_HEADER, MAX_BATCH, MAX_BODY_BYTES, MAX_DELAYED_401, MAX_IMAGES_PER_REQUEST, MAX_OPEN_PER_KEY,
    REQUEST_TIMEOUT_S,
)
from bigmodels.serving.store import ServiceStore, ServiceStoreError, check_key, key_id_of

GATEWAY_APP = "bigmodels-gateway"
INLINE_PARSE_BYTES = 64 * 1024
# Serve's per-request access log line in every replica and the proxy cost more CPU than the
# gateway's own checks; the gateway keeps its own request log (metrics.RequestLog) instead.
LOGGING = {"enable_access_log": False, "log_level": "WARNING"}
MODEL_DEPLOYMENT = "ModelServer"
GATEWAY_DEPLOYMENT = "Gateway"


def images_in(items: list) -> int:
    """A batch's size in images (each queued item is a (n, 28, 28) array)."""
    return sum(int(item.shape[0]) for item in items)


@serve.deployment(name=MODEL_DEPLOYMENT, max_ongoing_requests=int(MAX_BATCH.high), logging_config=LOGGING)
class ModelServer:
    def __init__(self, model_id: str, checkpoint: str, device: str = "cpu"):
        self.model_id = model_id
        self.predictor = Predictor(checkpoint, device)
        self.replica = serve.get_replica_context().replica_id.unique_id

    def reconfigure(self, config: dict) -> None:
        """Serve's user_config: the batching settings, applied to running replicas."""
        self.predict.set_max_batch_size(int(config["max_batch_size"]))
        self.predict.set_batch_wait_timeout_s(float(config["batch_wait_ms"]) / 1000.0)

    @serve.batch(max_batch_size=int(MAX_BATCH.default), batch_wait_timeout_s=0.005, batch_size_fn=images_in)
    async def predict(self, items: list[np.ndarray]) -> list[dict]:
        digits = [torch.from_numpy(d) for item in items for d in item]
        predictions, compute_ms = self.predictor.predict(digits)
        out, at = [], 0
        for item in items:
            n = int(item.shape[0])
            out.append({"predictions": [(p.label, p.probabilities) for p in predictions[at:at + n]],
                        "batch_size": len(digits), "compute_ms": compute_ms * n / len(digits),
                        "replica": self.replica})
            at += n
        return out

    async def __call__(self, digits: np.ndarray) -> dict:
        return await self.predict(digits)


def gateway_sender(handle, max_batch_size: int, batch_wait_ms: float, replicas: int):
    """How the gateway sends one request's digits ((n, 28, 28) arrays) to a model's replicas.

    Batch 1 sends each request on its own. Otherwise Serve's batching gathers
    concurrent requests here, in the gateway, into calls of up to ``max_batch_size``
    images -- the replica's own batching then only merges what arrives together --
    with two calls in flight per replica, so a replica never waits on the gateway.
    (A ``serve.batch`` queue belongs to the decorated function, so each model gets
    its own function: one model's requests never wait in another's queue.)
    """
    if max_batch_size <= 1:
        return handle.remote

    @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_ms / 1000.0,
                 max_concurrent_batches=2 * max(1, replicas), batch_size_fn=images_in)
    async def send(items: list[np.ndarray]) -> list[dict]:
        result = await handle.remote(np.concatenate(items))
        total = max(1, images_in(items))
        out, at = [], 0
        for item in items:
            n = int(item.shape[0])
            out.append({**result, "predictions": result["predictions"][at:at + n],
                        "compute_ms": result["compute_ms"] * n / total})
            at += n
        return out

    async def sender(digits: np.ndarray) -> dict:
        if digits.shape[0] >= max_batch_size:  # a full batch already: straight to a replica, not held in line
            return await handle.remote(digits)
        return await send(digits)

    return sender


DOCS_ASSETS = "/docs-assets"  # Swagger UI's script, style and icon, served by the gateway itself

# FastAPI's own /docs loads Swagger UI from a CDN: blank offline. fastapi-offline serves the
# same page with the files it vendors, from this service.
api = FastAPIOffline(
    redoc_url=None,
    static_url=DOCS_ASSETS,
    title="bigmodels model service",
    description="MNIST digit classifiers trained in bigmodels, served on Ray Serve. Every /v1 call needs an API "
                "key (`Authorization: Bearer bmk_...` or `X-API-Key`), created by the operator in the app's "
                "service page.",
    version="1",
)


def _error(status: int, reason: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": reason, "message": message}, status_code=status, headers=headers)


# ---------------------------------------------------------------- the OpenAPI document: what the routes answer
_ERROR = {"type": "object", "required": ["error", "message"], "title": "Error",
          "properties": {"error": {"type": "string", "description": "a machine-readable reason"},
                         "message": {"type": "string", "description": "a sentence for a person"}}}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                                "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
_REFUSALS = {
    400: "a malformed body: bad JSON, pixels or base64, or an image with no ink",
    401: "no API key, or one that is not known",
    403: "a revoked API key",
    404: "no such model is deployed",
    408: "the body did not arrive in time",
    413: "the body, an image or a batch is too large",
    415: "a Content-Type or an image type the service does not read",
    429: "the key's rate limit, its quota, or its requests open at once (see error)",
    503: "the model's replicas are down or being replaced; retry",
    504: "the model did not answer in time",
}


def _responses(ok: dict, ok_description: str, statuses: tuple[int, ...]) -> dict:
    """A route's documented answers: 200 with ``ok``, and each refusal with the error schema
    (429 and 503 with Retry-After)."""
    out: dict = {200: {"description": ok_description, "content": {"application/json": {"schema": ok}}}}
    for status in statuses:
        out[status] = {"description": _REFUSALS[status], "content": {"application/json": {"schema": _ERROR}},
                       **({"headers": _RETRY_AFTER} if status in (429, 503) else {})}
    return out


_ROW = {"type": "array", "minItems": IMAGE_SIZE, "maxItems": IMAGE_SIZE,
        "items": {"type": "number", "minimum": 0, "maximum": 255}}
_DIGIT = {"type": "array", "minItems": IMAGE_SIZE, "maxItems": IMAGE_SIZE, "items": _ROW,
          "description": f"{IMAGE_SIZE} rows of {IMAGE_SIZE} numbers, light ink on black, in [0, 1] or 0-255"}
_BASE64 = {"type": "string", "format": "byte", "description": "a PNG or JPEG, base64 (a data: URL too)"}
_BINARY = {"type": "string", "format": "binary"}
PREDICT_BODY = {"required": True, "content": {
    "image/png": {"schema": _BINARY},
    "image/jpeg": {"schema": _BINARY},
    "application/json": {"schema": {"oneOf": [
        {"type": "object", "title": "A digit's pixels", "required": ["pixels"], "additionalProperties": False,
         "properties": {"pixels": _DIGIT}},
        {"type": "object", "title": "A batch of digits' pixels", "required": ["pixels"], "additionalProperties": False,
         "properties": {"pixels": {"type": "array", "minItems": 1, "maxItems": MAX_IMAGES_PER_REQUEST,
                                   "items": _DIGIT}}},
        {"type": "object", "title": "An image", "required": ["image"], "additionalProperties": False,
         "properties": {"image": _BASE64}},
        {"type": "object", "title": "A batch of images", "required": ["images"], "additionalProperties": False,
         "properties": {"images": {"type": "array", "minItems": 1, "maxItems": MAX_IMAGES_PER_REQUEST,
                                   "items": _BASE64}}},
    ]}},
}}
PREDICTIONS = {"type": "object", "required": ["predictions"], "properties": {"predictions": {
    "type": "array", "description": "one per image, in the order sent", "items": {
        "type": "object", "required": ["label", "probabilities", "model", "latency_ms"],
        "properties": {"label": {"type": "integer", "minimum": 0, "maximum": 9},
                       "probabilities": {"type": "array", "minItems": 10, "maxItems": 10,
                                         "items": {"type": "number", "minimum": 0, "maximum": 1}},
                       "model": {"type": "string"}, "latency_ms": {"type": "number", "minimum": 0}}}}}}
MODELS = {"type": "object", "required": ["models"], "properties": {"models": {"type": "array", "items": {
    "type": "object", "required": ["id", "architecture", "source", "origin", "version", "accuracy"],
    "properties": {"id": {"type": "string"}, "architecture": {"type": "string"}, "source": {"type": "string"},
                   "origin": {"type": "string"}, "version": {"type": "string"},
                   "accuracy": {"type": ["number", "null"]}}}}}}


def _openapi() -> dict:
    """FastAPI's document, with the keys as security schemes and without the 422 it adds for
    a path parameter: a request that does not match the API is a 400 here."""
    if api.openapi_schema is None:
        document = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        schemas = document.setdefault("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer bmk_..."},
            "apiKey": {"type": "apiKey", "in": "header", "name": ALT_KEY_HEADER}}
        document["security"] = [{"bearer": []}, {"apiKey": []}]
        api.openapi_schema = document
    return api.openapi_schema


api.openapi = _openapi


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError):
    return _error(400, "bad_request", "the request does not match the API (see /docs)")


@api.exception_handler(StarletteHTTPException)
async def _http(request: Request, exc: StarletteHTTPException):
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, reason, str(exc.detail), exc.headers)  # a 405 keeps its Allow


class _NothingEscapes:
    """A catch-all around the routes (pure ASGI): an exception that would leave the app is
    answered here as JSON 500, and goes no further. (Starlette's own handler for Exception
    answers, then raises it again -- and for an exception out of the app Serve sends its
    plain-text "Internal Server Error" instead.) The traceback goes to the replica's log,
    never to a client."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def sending(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            logging.getLogger("ray.serve").exception("the gateway failed to answer %s", scope.get("path"))
            if not started:
                await _error(500, "internal", "the service failed to answer this request")(scope, receive, send)


api.add_middleware(_NothingEscapes)


def unavailable(exc: BaseException) -> JSONResponse:
    """A model call that failed, however: its replica died, is being replaced, is not up yet,
    or its app is gone. The client may retry."""
    return _error(503, "unavailable", f"the model is unavailable right now ({type(exc).__name__})",
                  {"Retry-After": "1"})


async def read_body(request: Request) -> bytes:
    """The body, read within ``BODY_READ_TIMEOUT_S`` (else a 408): a client that declares a
    length and then stops sending holds its request that long and no longer."""
    try:
        return await asyncio.wait_for(read_capped(request), BODY_READ_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise PayloadError(408, "body_timeout", f"the body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s") from None


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit``: from the
    Content-Length header before reading anything, or while streaming a body
    that did not say its length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise PayloadError(400, "bad_request", "Content-Length is not a number") from None
        if size > limit:
            raise PayloadError(413, "too_large", f"the body is larger than {limit // 2**20} MB")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadError(413, "too_large", f"the body is larger than {limit // 2**20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def presented_key(request: Request) -> str | None:
    header = request.headers.get(KEY_HEADER, "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get(ALT_KEY_HEADER) or None


@serve.deployment(name=GATEWAY_DEPLOYMENT, num_replicas=1, max_ongoing_requests=GATEWAY_MAX_ONGOING,
                  ray_actor_options={"num_cpus": GATEWAY_CPUS}, logging_config=LOGGING)
@serve.ingress(api)
class Gateway:
    def __init__(self, home: str):
        self.store = ServiceStore(home)
        self.limiter = RateLimiter()
        self.log = RequestLog()
        self.keys: dict = {}
        self.models: dict = {}
        self.pending_rows: dict[tuple[str, str], list] = {}
        self.open: dict[str, int] = {}  # key id -> its requests in the gateway now (MAX_OPEN_PER_KEY)
        self.delayed_401 = 0  # wrong-key answers waiting out INVALID_KEY_DELAY_S now
        self.senders: dict = {}  # model id -> (how it is deployed, its gateway_sender)
        self.loaded_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self._refresh_sync()

    # ------------------------------------------------------------ state
    def _refresh_sync(self) -> None:
        self.keys = self.store.key_hashes()
        self.models = {d.model_id: d for d in self.store.deployments()}
        self.loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        """Keys, deployments and usage at most ``KEY_CACHE_S`` old; pending usage flushed."""
        if time.monotonic() - self.loaded_at < KEY_CACHE_S:
            return
        async with self._refresh_lock:
            if time.monotonic() - self.loaded_at < KEY_CACHE_S:
                return
            rows, self.pending_rows = self.pending_rows, {}
            try:
                await asyncio.to_thread(self.store.add_usage, [(k, m, *v) for (k, m), v in rows.items()])
                await asyncio.to_thread(self._refresh_sync)
            except Exception:  # a busy or broken store: keep serving on what is cached, retry next time
                for key, value in rows.items():
                    self._meter(key[0], key[1], *value)
                self.loaded_at = time.monotonic()

    def _meter(self, key_id: str, model: str, requests: int, images: int, compute_ms: float) -> None:
        row = self.pending_rows.setdefault((key_id, model), [0, 0, 0.0])
        row[0] += requests
        row[1] += images
        row[2] += compute_ms

    async def _reserve(self, record, images: int) -> JSONResponse | None:
        """Take the images from the key's quota before the model answers (None), or the refusal.
        The store checks and adds in one statement, so requests in flight at once -- or in
        another gateway -- never together take more than the quota. A key without a quota
        costs no write."""
        if record.quota_images <= 0:
            return None
        try:
            reserved = await asyncio.to_thread(self.store.reserve_images, record.id, images)
        except ServiceStoreError:
            return _error(503, "unavailable", "this key's quota cannot be checked right now", {"Retry-After": "1"})
        if reserved:
            return None
        return _error(429, "quota_exceeded", f"this key's quota of {record.quota_images:,} images is used up",
                      {"Retry-After": retry_after_header(24 * 3600)})

    async def _refund(self, record, images: int) -> None:
        """A request that got no answer gives its images back."""
        if record.quota_images > 0:
            with contextlib.suppress(ServiceStoreError):
                await asyncio.to_thread(self.store.refund_images, record.id, images)

    def _sender(self, deployment):
        """The model's gateway_sender, made again when its app or batching settings change."""
        s = deployment.settings
        shape = (deployment.app_name, s.max_batch_size, s.batch_wait_ms, s.replicas)
        known = self.senders.get(deployment.model_id)
        if known is None or known[0] != shape:
            handle = serve.get_app_handle(deployment.app_name)
            known = self.senders[deployment.model_id] = (shape, gateway_sender(handle, *shape[1:]))
        return known[1]

    async def _authorise(self, request: Request):
        """(key record, None) or (None, the error response)."""
        await self._fresh()
        presented = presented_key(request)
        verdict, record = check_key(presented, self.keys)
        key_id = key_id_of(presented)
        if verdict == "invalid" and key_id is not None and key_id not in self.keys:
            # perhaps a key made since the last read: that one row, now (one indexed read)
            with contextlib.suppress(ServiceStoreError):
                found = await asyncio.to_thread(self.store.key_hash, key_id)
                if found is not None:
                    self.keys[key_id] = found
                    verdict, record = check_key(presented, self.keys)
        if verdict == "missing":
            return None, _error(401, "missing_key", f"send an API key: {KEY_HEADER}: Bearer <key>",
                                {"WWW-Authenticate": "Bearer"})
        if verdict == "invalid":
            await self._slow_down()
            return None, _error(401, "invalid_key", "this API key is not known", {"WWW-Authenticate": "Bearer"})
        if verdict == "revoked":
            return None, _error(403, "revoked_key", "this API key was revoked")
        wait = self.limiter.take(record.id, record.rate_per_s, record.burst, time.monotonic())
        if wait > 0:
            return None, _error(429, "rate_limited", f"more than {record.rate_per_s:g} requests/s for this key",
                                {"Retry-After": retry_after_header(wait)})
        return record, None

    async def _slow_down(self) -> None:
        """A wrong key is answered after INVALID_KEY_DELAY_S: a client guessing keys gets a try
        a second per connection, and the gateway's time goes to valid keys. At most
        MAX_DELAYED_401 wait at once, so waiting ones never fill the gateway either."""
        if self.delayed_401 >= MAX_DELAYED_401:
            return
        self.delayed_401 += 1
        try:
            await asyncio.sleep(INVALID_KEY_DELAY_S)
        finally:
            self.delayed_401 -= 1

    def _answer(self, started: float, model: str, response: JSONResponse, **more) -> JSONResponse:
        self.log.add(Record(time.time(), model, response.status_code, (time.perf_counter() - started) * 1000, **more))
        return response

    # ------------------------------------------------------------ routes
    @api.get("/health", include_in_schema=False)
    async def health(self) -> dict:
        return {"ok": True}

    @api.get(API_PREFIX + "/models", summary="The models this service answers with",
             responses=_responses(MODELS, "each deployed model, its source, version and accuracy", (401, 403, 429)))
    async def list_models(self, request: Request):
        started = time.perf_counter()
        record, refusal = await self._authorise(request)
        if refusal is not None:
            return self._answer(started, "", refusal)
        models = [{"id": d.model_id, "architecture": d.architecture, "source": d.source_id, "origin": d.origin,
                   "version": d.version, "accuracy": d.accuracy} for d in self.models.values()]
        return self._answer(started, "", JSONResponse({"models": models}))

    @api.post(API_PREFIX + "/models/{model_id}/predict",
              summary="Classify one digit or a batch",
              description="Body: a PNG or JPEG (Content-Type image/png or image/jpeg); or JSON "
                          '{"pixels": 28x28 numbers in [0, 1]} or a list of such digits; or JSON '
                          '{"image": base64} / {"images": [base64, ...]}. Answers one '
                          '{"label", "probabilities", "model", "latency_ms"} per image, in "predictions".',
              openapi_extra={"requestBody": PREDICT_BODY},
              responses=_responses(PREDICTIONS, "a prediction per image",
                                   (400, 401, 403, 404, 408, 413, 415, 429, 503, 504)))
    async def predict(self, model_id: str, request: Request):
        started = time.perf_counter()
        record, refusal = await self._authorise(request)
        if refusal is not None:
            return self._answer(started, "", refusal)
        deployment = self.models.get(model_id)
        if deployment is None:
            return self._answer(started, "", _error(404, "unknown_model",
                                                    f"no model {model_id!r} is deployed (GET {API_PREFIX}/models)"))
        if self.open.get(record.id, 0) >= MAX_OPEN_PER_KEY:
            return self._answer(started, model_id, _error(
                429, "too_many_open", f"this key already has {MAX_OPEN_PER_KEY} requests in progress",
                {"Retry-After": "1"}))
        self.open[record.id] = self.open.get(record.id, 0) + 1
        try:
            return await self._predict_held(started, record, deployment, request)
        finally:
            self.open[record.id] -= 1
            if not self.open[record.id]:
                del self.open[record.id]

    async def _predict_held(self, started: float, record, deployment, request: Request) -> JSONResponse:
        """A request counted among its key's open ones: its body, its quota, its answer."""
        model_id = deployment.model_id
        try:
            body = await read_body(request)
            kind = request.headers.get("content-type")
            if len(body) <= INLINE_PARSE_BYTES and media_type(kind) == JSON_TYPE:
                digits = digits_from_body(kind, body)  # a digit's JSON parses in well under a millisecond
            else:  # image decoding and big batches: off the event loop, so other requests keep moving
                digits = await asyncio.to_thread(digits_from_body, kind, body)
        except PayloadError as err:
            return self._answer(started, model_id, _error(err.status, err.reason, err.message))
        refusal = await self._reserve(record, len(digits))
        if refusal is not None:
            return self._answer(started, model_id, refusal)
        try:
            return await self._predict(started, record, deployment, digits)
        except BaseException:
            await asyncio.shield(self._refund(record, len(digits)))
            raise

    async def _predict(self, started: float, record, deployment, digits: list) -> JSONResponse:
        """The reserved digits to the model's replicas; a refusal (503, 504) refunds them."""
        model_id = deployment.model_id
        chunk = max(1, deployment.settings.max_batch_size)
        # numpy, not torch, across the process boundary: Ray passes it without a pickle copy
        parts = [torch.stack(digits[i:i + chunk]).numpy() for i in range(0, len(digits), chunk)]
        send = self._sender(deployment)
        try:
            results = await asyncio.wait_for(asyncio.gather(*[send(p) for p in parts]), REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            await self._refund(record, len(digits))
            return self._answer(started, model_id, _error(504, "timeout",
                                                          f"the model did not answer within {REQUEST_TIMEOUT_S:.0f} s"))
        except Exception as exc:  # whatever Ray or Serve raise for a replica that is not there: a JSON 503
            self.senders.pop(model_id, None)
            await self._refund(record, len(digits))
            return self._answer(started, model_id, unavailable(exc))
        latency_ms = (time.perf_counter() - started) * 1000
        predictions = [{"label": label, "probabilities": probabilities, "model": model_id,
                        "latency_ms": round(latency_ms, 3)}
                       for result in results for label, probabilities in result["predictions"]]
        compute_ms = sum(r["compute_ms"] for r in results)
        self._meter(record.id, model_id, 1, len(digits), compute_ms)
        return self._answer(started, model_id, JSONResponse({"predictions": predictions}), images=len(digits),
                            batch_size=max(r["batch_size"] for r in results), replica=results[0]["replica"])

    def __del__(self):
        """Serve stops the gateway (a shutdown, a redeploy): what was metered since the last
        write is written now, not lost with this replica's memory."""
        rows, self.pending_rows = getattr(self, "pending_rows", {}), {}
        if rows:
            with contextlib.suppress(Exception):
                self.store.add_usage([(k, m, *v) for (k, m), v in rows.items()])

    # ------------------------------------------------------------ for the app (through a handle, not HTTP)
    async def records(self, since: float) -> list[dict]:
        return self.log.since(since)

    async def flush(self) -> bool:
        """Write metered usage now (the page calls it before showing usage)."""
        self.loaded_at = 0.0
        await self._fresh()
        return True
