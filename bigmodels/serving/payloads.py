"""A prediction request's body -> the 28x28 digits the models take.

What a client may send (``POST /v1/models/{id}/predict``):

* a PNG or JPEG as the body (``Content-Type: image/png`` / ``image/jpeg``, or
  ``application/octet-stream``: the type is sniffed from the bytes anyway);
* JSON ``{"pixels": [[...28 numbers...] x 28]}`` -- one digit as MNIST stores
  it, light ink on black, numbers in [0, 1] or 0-255 -- or ``{"pixels": [d1,
  d2, ...]}`` for a batch of such digits;
* JSON ``{"image": "<base64 PNG/JPEG>"}``, or ``{"images": [...]}`` for a batch.

Images go through exactly what the sandbox does with an upload:
``bigmodels.data.uploads.read_image`` (sniffing, byte and pixel caps, full
decode) then ``bigmodels.data.digits.prepare(..., "mnist")`` (crop, scale to
20 px, centre of mass to the centre). Pixel arrays are already MNIST's shape
and are used as they are, like the sandbox's test digits.

Every refusal is a ``PayloadError`` with the HTTP status (400 malformed, 413
too large, 415 not a type we read), a machine-readable reason and a sentence.
"""
from __future__ import annotations

import base64
import binascii
import json
import numpy as np
import torch

from bigmodels.data.digits import prepare
from bigmodels.data.uploads import UploadError, read_image
from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.serving.settings import MAX_BODY_BYTES, MAX_IMAGES_PER_REQUEST

IMAGE_TYPES = ("image/png", "image/jpeg", "application/octet-stream")
JSON_TYPE = "application/json"

_UPLOAD_STATUS = {"too_large": 413, "too_many_pixels": 413, "unsupported": 415, "not_image": 415}
_UPLOAD_MESSAGES = {
    "empty": "the image is empty",
    "too_large": "the image is larger than {limit_mb:.0f} MB",
    "unsupported": "images must be PNG or JPEG (this one is {kind})",
    "not_image": "the body is not an image: send a PNG or JPEG, or JSON (see /docs)",
    "too_many_pixels": "the image claims {megapixels} megapixels; at most {limit_mp} are read",
    "corrupt": "the image cannot be decoded ({detail})",
}


class PayloadError(ValueError):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict:
        return {"error": self.reason, "message": self.message}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def digits_from_body(content_type: str | None, body: bytes) -> list[torch.Tensor]:
    """The request's digits, each float32 (28, 28) in [0, 1]; raises ``PayloadError``."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES // 2**20} MB")
    kind = media_type(content_type)
    if kind in IMAGE_TYPES:
        return [digit_from_image(body)]
    if kind == JSON_TYPE:
        return digits_from_json(body)
    raise PayloadError(415, "unsupported_media_type",
                       f"Content-Type {kind or '(none)'} is not read: send image/png, image/jpeg or application/json")


def digit_from_image(data: bytes, index: int | None = None) -> torch.Tensor:
    """One PNG/JPEG -> the MNIST-style digit (the sandbox's upload path, unchanged)."""
    where = "" if index is None else f"image {index}: "
    try:
        image = read_image(data)
    except UploadError as err:
        raise PayloadError(_UPLOAD_STATUS.get(err.reason, 400), err.reason,
                           where + _UPLOAD_MESSAGES[err.reason].format(**err.values)) from None
    pixels = prepare(image, "mnist")
    if pixels is None:
        raise PayloadError(400, "blank", where + "the image has no ink to read (an empty canvas?)")
    return pixels


def digits_from_json(body: bytes) -> list[torch.Tensor]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # nesting deeper than the parser goes: no digit is nested like that
        raise PayloadError(400, "bad_json", "the body's JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise PayloadError(400, "bad_json", 'expected a JSON object: {"pixels": ...}, {"image": ...} or {"images": [...]}')
    fields = [name for name in ("pixels", "image", "images") if name in document]
    if len(fields) != 1:
        raise PayloadError(400, "bad_json", 'give exactly one of "pixels", "image" or "images"')
    field = fields[0]
    if field == "image":
        return [digit_from_image(_base64(document["image"], 0))]
    if field == "images":
        images = document["images"]
        if not isinstance(images, list) or not images:
            raise PayloadError(400, "bad_json", '"images" must be a non-empty list of base64 PNG/JPEG strings')
        _check_count(len(images))
        return [digit_from_image(_base64(item, i), i) for i, item in enumerate(images)]
    return pixels_digits(document["pixels"])


def _check_count(count: int) -> None:
    if count > MAX_IMAGES_PER_REQUEST:
        raise PayloadError(413, "too_many_images",
                           f"{count} images in one request; at most {MAX_IMAGES_PER_REQUEST}")


def _base64(value, index: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise PayloadError(400, "bad_base64", f"image {index}: expected a base64 string")
    if value.startswith("data:") and "," in value:  # a data URL, as a browser's canvas gives
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(400, "bad_base64", f"image {index}: not valid base64") from None


def pixels_digits(value) -> list[torch.Tensor]:
    """A 28x28 array, or a list of them, of numbers in [0, 1] (or 0-255)."""
    if not isinstance(value, list) or not value:
        raise PayloadError(400, "bad_pixels", f'"pixels" must be {IMAGE_SIZE} rows of {IMAGE_SIZE} numbers, or a list of such digits')
    batch = isinstance(value[0], list) and bool(value[0]) and isinstance(value[0][0], list)
    digits = value if batch else [value]
    _check_count(len(digits))
    return [_one_digit(d, i if batch else None) for i, d in enumerate(digits)]


def _one_digit(rows, index: int | None) -> torch.Tensor:
    """One digit's rows -> float32 (28, 28) in [0, 1]. numpy does the conversion
    (a Python loop over 784 values was a gateway hot spot); what it would quietly
    accept -- booleans, nested lists, NaN -- is refused first or after."""
    where = "" if index is None else f"digit {index}: "
    if (not isinstance(rows, list) or len(rows) != IMAGE_SIZE
            or not all(isinstance(row, list) and len(row) == IMAGE_SIZE for row in rows)):
        raise PayloadError(400, "bad_pixels", where + f"expected {IMAGE_SIZE} rows of {IMAGE_SIZE} numbers")
    if any(type(v) is bool for row in rows for v in row if type(v) is not float and type(v) is not int):
        raise PayloadError(400, "bad_pixels", where + "pixels must be finite numbers")
    try:
        array = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise PayloadError(400, "bad_pixels", where + "pixels must be finite numbers") from None
    if array.shape != (IMAGE_SIZE, IMAGE_SIZE) or not np.isfinite(array).all():
        raise PayloadError(400, "bad_pixels", where + "pixels must be finite numbers")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 255:
        raise PayloadError(400, "bad_pixels", where + "pixels must lie in [0, 1] (or 0-255)")
    pixels = torch.from_numpy(array)
    return pixels / 255.0 if high > 1.0 else pixels
