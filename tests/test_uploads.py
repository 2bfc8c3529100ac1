import io
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bigmodels.data.digits import mnist_style
from bigmodels.data.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, WORKING_SIDE, UploadError, read_image

REPO = Path(__file__).resolve().parent.parent


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def digit_one(width=120, height=160, ink=0, paper=255) -> Image.Image:
    a = np.full((height, width), paper, np.uint8)
    a[20:height - 20, width // 2 - 6:width // 2 + 6] = ink
    return Image.fromarray(a)


def reason(data: bytes) -> str:
    with pytest.raises(UploadError) as caught:
        read_image(data)
    return caught.value.reason


# ----------------------------------------------------------------- accepted
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_and_jpeg_are_read_as_grey(fmt, mode):
    array = read_image(encode(digit_one().convert(mode), fmt))
    assert array.dtype == np.uint8 and array.shape == (160, 120)
    assert mnist_style(array) is not None


def test_transparency_is_kept_for_the_ink_reader():
    rgba = np.zeros((50, 40, 4), np.uint8)
    rgba[10:40, 15:25, 3] = 255  # black strokes on a transparent background, as a canvas export
    array = read_image(encode(Image.fromarray(rgba), "PNG"))
    assert array.shape == (50, 40, 4) and mnist_style(array) is not None
    palette = Image.new("P", (20, 20))
    assert read_image(encode(palette, "PNG", transparency=0)).shape == (20, 20, 4)


def test_sixteen_bit_png_is_scaled_not_clipped():
    wide = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)
    array = read_image(encode(Image.fromarray(wide), "PNG"))
    assert array.max() == (wide.max() // 257) and array.max() > 200


def test_exif_orientation_turns_photos_upright():
    image = digit_one(width=60, height=100).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    array = read_image(encode(image, "JPEG", exif=exif))
    assert array.shape == (60, 100)


def test_big_photos_are_shrunk_for_the_work():
    array = read_image(encode(digit_one(width=3000, height=2000), "PNG"))
    assert max(array.shape) == WORKING_SIDE and array.shape == (683, 1024)


# ----------------------------------------------------------------- refused
def test_empty_file():
    assert reason(b"") == "empty"


def test_too_many_bytes_is_refused_before_decoding():
    with pytest.raises(UploadError) as caught:
        read_image(b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES)
    assert caught.value.reason == "too_large" and caught.value.values["limit_mb"] == 5


@pytest.mark.parametrize("data", [b"hello, this is text", b"<html><body>digit</body></html>",
                                  b"%PDF-1.4 not really", bytes(range(256)) * 4])
def test_non_images_are_named_as_such(data):
    assert reason(data) == "not_image"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_image_types_are_refused_by_content(fmt):
    data = encode(digit_one().convert("RGB"), fmt)
    with pytest.raises(UploadError) as caught:
        read_image(data)
    assert caught.value.reason == "unsupported" and caught.value.values["kind"] == fmt


def test_truncated_image_is_reported_corrupt():
    data = encode(digit_one(), "PNG")
    assert reason(data[: len(data) // 2]) == "corrupt"
    jpeg = encode(digit_one().convert("RGB"), "JPEG")
    assert reason(jpeg[: len(jpeg) // 3]) == "corrupt"


@pytest.mark.parametrize("side", [5000, 14000, 20000])
def test_decompression_bombs_are_refused_from_the_header(side):
    # a 1-bit blank image compresses to kilobytes while claiming side^2 pixels
    data = encode(Image.new("1", (side, side)), "PNG")
    assert len(data) < MAX_UPLOAD_BYTES
    with pytest.raises(UploadError) as caught:
        read_image(data)
    assert caught.value.reason == "too_many_pixels"
    assert caught.value.values["megapixels"] == f"{side * side / 1e6:,.1f}"
    assert side * side > MAX_PIXELS


def test_the_byte_cap_matches_the_server_setting():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES


def test_every_refusal_has_a_message_in_both_languages():
    from bigmodels.base.i18n import LANGUAGES, translate

    samples = {
        "empty": {}, "not_image": {}, "too_large": {"size_mb": 6.0, "limit_mb": 5.0},
        "unsupported": {"kind": "GIF"}, "too_many_pixels": {"megapixels": "400.0", "limit_mp": "16.8"},
        "corrupt": {"detail": "image file is truncated"},
    }
    for lang in LANGUAGES:
        for why, values in samples.items():
            assert translate(f"sandbox.upload.error.{why}", lang, **values)
