"""Check an uploaded image before anything decodes it in full.

An upload is untrusted bytes. The checks, cheapest first:

1. size in bytes: nothing, or more than ``MAX_UPLOAD_BYTES`` (the same 5 MB
   that ``server.maxUploadSize`` in .streamlit/config.toml enforces -- checked
   again here because code can be called without that server setting);
2. the type, sniffed from the content by Pillow (the file name and the
   browser's MIME type are whatever the sender says): PNG or JPEG only;
3. the pixel count from the header, before decoding: a tiny compressed file
   can claim a gigapixel canvas (a decompression bomb), so more than
   ``MAX_PIXELS`` is refused without allocating it;
4. the full decode: a truncated or corrupt file is refused, not half-read.

Every refusal is an ``UploadError`` whose ``reason`` names the failed check
and whose ``values`` fill the message, so the page can say it in the user's
language.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # a 16-megapixel photo is plenty for one digit
ALLOWED_FORMATS = ("PNG", "JPEG")
WORKING_SIDE = 1024  # larger images are shrunk to this after validation


@dataclass
class UploadError(ValueError):
    reason: str  # empty / too_large / not_image / unsupported / too_many_pixels / corrupt
    values: dict = field(default_factory=dict)

    def __str__(self) -> str:  # for logs and tests; the page translates ``reason``
        return f"{self.reason}: {self.values}" if self.values else self.reason


def read_image(data: bytes) -> np.ndarray:
    """Validated upload bytes -> uint8 image array: (H, W) grey, or (H, W, 4) RGBA
    when the image has transparency. JPEG photos are turned upright by their
    EXIF orientation. Raises ``UploadError``."""
    if not data:
        raise UploadError("empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError("too_large", {"size_mb": len(data) / 2**20, "limit_mb": MAX_UPLOAD_BYTES / 2**20})
    try:
        # Pillow's global bomb check (a warning past ~89 MP, an error past ~179 MP)
        # fires inside open(); ours is stricter and checked right after. Its warning
        # is not silenced here: warnings.catch_warnings is not thread-safe, and a
        # Streamlit server serves many sessions from threads.
        image = Image.open(io.BytesIO(data))  # reads the header only
        kind = image.format
        if kind not in ALLOWED_FORMATS:
            raise UploadError("unsupported", {"kind": kind or "?"})
        width, height = image.size
        if width < 1 or height < 1:
            raise UploadError("corrupt", {"detail": f"{width}x{height} pixels"})
        if width * height > MAX_PIXELS:
            raise UploadError("too_many_pixels", _pixels_values(width * height))
        image.load()
        image = ImageOps.exif_transpose(image)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refused at its own limit while reading the header: "Image size (N pixels) exceeds ..."
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        raise UploadError("too_many_pixels", _pixels_values(int(claimed.group(1)) if claimed else None)) from None
    except UnidentifiedImageError:
        raise UploadError("not_image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's ways of saying "broken file"
        raise UploadError("corrupt", {"detail": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}) from None
    return _to_array(image)


def _pixels_values(pixels: int | None) -> dict:
    claimed = f"{pixels / 1e6:,.1f}" if pixels is not None else f"> {MAX_PIXELS / 1e6:,.1f}"
    return {"megapixels": claimed, "limit_mp": f"{MAX_PIXELS / 1e6:,.1f}"}


def _to_array(image: Image.Image) -> np.ndarray:
    """Grey, or RGBA when there is an alpha channel or a transparent palette entry;
    no larger than ``WORKING_SIDE`` on its longer side."""
    if "A" in image.getbands() or "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit greyscale PNG: scale 0-65535 to 0-255 (Pillow's "L" conversion would clip at 255)
        image = Image.fromarray((np.asarray(image, dtype=np.int64).clip(0, 65535) // 257).astype(np.uint8))
    else:
        image = image.convert("L")
    if max(image.size) > WORKING_SIDE:
        # A digit needs no more; it keeps the preprocessing of a 16 MP photo fast.
        image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    return np.asarray(image)
