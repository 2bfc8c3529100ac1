import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.data.digits import (
    DIGIT_BOX, MNIST_CENTRE, centre_of_mass, from_uint8, ink_map, mnist_style, naive_resize, prepare,
    to_model_input, to_uint8,
)
from bigmodels.data.mnist import normalize


# ----------------------------------------------------------------- rendering
def render_many(digits: torch.Tensor, canvas=(280, 280), size=200, offset=(0, 0), thicker=0,
                style="alpha") -> list[np.ndarray]:
    """MNIST digits (N, 28, 28) drawn the way the sandbox canvas returns a drawing:
    blown up to ``size`` px, with the hard, opaque edges of a pen stroke
    (thresholded), ``thicker`` px more ink on each side of every stroke, at
    ``offset`` from the centre of a ``canvas``-sized picture.

    style: "alpha" (black ink on a transparent canvas, what the canvas gives with
    no background), "white_on_black" (opaque RGB), "black_on_white" (opaque RGB: paper)."""
    x = F.interpolate(digits.float()[:, None] / 255, size=(size, size), mode="bilinear", align_corners=False)
    if thicker:  # a square dilation, as two cheap 1-D passes
        k = 2 * thicker + 1
        x = F.max_pool2d(F.max_pool2d(x, (k, 1), stride=1, padding=(thicker, 0)), (1, k), stride=1,
                         padding=(0, thicker))
    ink = ((x[:, 0] > 0.5).to(torch.uint8) * 255).numpy()
    h, w = canvas
    top, left = (h - size) // 2 + offset[0], (w - size) // 2 + offset[1]
    pictures = []
    for one in ink:
        a = np.zeros((h, w), np.uint8)
        a[top:top + size, left:left + size] = one
        if style == "alpha":
            out = np.zeros((h, w, 4), np.uint8)
            out[..., 3] = a
        elif style == "white_on_black":
            out = np.stack([a] * 3, -1)
        elif style == "black_on_white":
            out = np.stack([255 - a] * 3, -1)
        else:
            raise ValueError(style)
        pictures.append(out)
    return pictures


def render(digit: torch.Tensor, **variant) -> np.ndarray:
    return render_many(digit[None], **variant)[0]


# The ways a canvas or a photo presents a digit: sizes, places, stroke widths, colours.
CANVAS_VARIANTS = [
    dict(style="alpha"),
    dict(style="black_on_white", size=180, offset=(-30, 25), thicker=2),
    dict(style="white_on_black", size=120, offset=(60, -50), thicker=1),
    dict(style="black_on_white", canvas=(300, 400), size=240, offset=(10, 70), thicker=3),
    dict(style="alpha", size=90, offset=(-80, -80)),
    dict(style="white_on_black", size=260, thicker=3),
    dict(style="alpha", canvas=(400, 400), size=300, offset=(30, -20), thicker=4),
]


# ----------------------------------------------------------------- the recipe
def test_mnist_centre_constant_matches_the_data(full_mnist):
    x = full_mnist.train_images[:20000].float()
    idx = torch.arange(IMAGE_SIZE).float()
    mass = x.sum((1, 2))
    rows = (x.sum(2) * idx).sum(1) / mass
    cols = (x.sum(1) * idx).sum(1) / mass
    assert rows.mean().item() == pytest.approx(MNIST_CENTRE[0], abs=0.05)
    assert cols.mean().item() == pytest.approx(MNIST_CENTRE[1], abs=0.05)


def test_mnist_digits_pass_through_almost_unchanged(full_mnist):
    """An MNIST digit already follows the recipe, so preprocessing it must give it back."""
    digits = full_mnist.test_images[:300]
    out = torch.stack([mnist_style(d.numpy()) for d in digits])
    assert (out - from_uint8(digits)).abs().mean().item() < 0.01


def test_output_follows_the_mnist_recipe():
    # an off-centre, tall, thin "1" on a big black-on-white picture
    picture = np.full((300, 500), 255, np.uint8)
    picture[40:240, 380:420] = 0
    px = mnist_style(picture)
    assert px.shape == (IMAGE_SIZE, IMAGE_SIZE) and px.dtype == torch.float32
    assert px.min() >= 0 and px.max() == pytest.approx(1.0)
    rows = torch.nonzero(px.amax(1) > 0).flatten()
    cols = torch.nonzero(px.amax(0) > 0).flatten()
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert height == DIGIT_BOX  # longer side scaled to 20 px
    assert width == 4  # 200:40 aspect ratio kept (20:4)
    row, col = centre_of_mass(px)
    assert abs(row - MNIST_CENTRE[0]) <= 0.5 and abs(col - MNIST_CENTRE[1]) <= 0.5


@pytest.mark.parametrize("variant", CANVAS_VARIANTS[1:])
def test_the_same_digit_anywhere_in_any_colour_gives_the_same_input(full_mnist, variant):
    digit = full_mnist.test_images[7]
    reference = mnist_style(render(digit))
    other = mnist_style(render(digit, **{**variant, "thicker": 0}))
    # same drawing, other size/place/colour: nearly the same 28x28 input
    assert (reference - other).abs().mean().item() < 0.03


def test_ink_is_read_from_alpha_or_brightness_and_inverted_on_light_backgrounds(full_mnist):
    digit = full_mnist.test_images[3]
    inks = [ink_map(render(digit, style=s)) for s in ("alpha", "white_on_black", "black_on_white")]
    for ink in inks[1:]:
        assert np.array_equal(ink, inks[0])
    # grey paper, grey pencil: the paper reads as no ink, the pencil as a full-strength digit
    paper = np.full((100, 100), 200, np.uint8)
    paper[30:70, 45:55] = 80
    assert ink_map(paper)[0, 0].item() == 0
    digit = mnist_style(paper)
    assert digit.max().item() == pytest.approx(1.0) and digit[0, 0].item() == 0


def test_rgb_canvas_colour_strokes_count_as_ink():
    picture = np.full((120, 120, 3), 255, np.uint8)
    picture[20:100, 50:62] = (200, 30, 30)  # a red pen on white
    assert mnist_style(picture) is not None


@pytest.mark.parametrize("picture", [
    np.zeros((280, 280, 4), np.uint8),  # the untouched canvas: fully transparent
    np.full((280, 280, 4), 255, np.uint8),  # opaque white canvas
    np.full((50, 60), 255, np.uint8),  # white paper
    np.full((50, 60, 3), 128, np.uint8),  # uniformly grey
    np.full((1, 1), 0, np.uint8),
])
def test_a_blank_picture_gives_no_digit(picture):
    assert mnist_style(picture) is None
    assert naive_resize(picture) is None


def test_faint_specks_do_not_stretch_the_bounding_box():
    picture = np.zeros((200, 200), np.uint8)
    picture[50:150, 95:105] = 255
    clean = mnist_style(picture)
    picture[2, 2] = 10  # a speck far away, 4% of the ink's strength
    assert torch.equal(mnist_style(picture), clean)


def test_naive_resize_keeps_position_and_size_mnist_style_does_not(full_mnist):
    small_in_a_corner = render(full_mnist.test_images[0], size=80, offset=(-90, -90), style="black_on_white")
    naive, mnist = naive_resize(small_in_a_corner), mnist_style(small_in_a_corner)
    assert centre_of_mass(naive)[0] < 8  # still up in the corner, tiny
    assert (naive > 0).sum() < (mnist > 0).sum() / 3
    assert abs(centre_of_mass(mnist)[0] - 14) <= 0.5


@pytest.mark.parametrize("bad", [
    np.zeros((10, 10, 2), np.uint8), np.zeros((10,), np.uint8), np.zeros((10, 10), np.float32),
    np.zeros((0, 10), np.uint8),
])
def test_malformed_arrays_are_refused_with_a_message(bad):
    with pytest.raises(ValueError):
        mnist_style(bad)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown preprocessing method"):
        prepare(np.zeros((28, 28), np.uint8), "fancy")


def test_model_input_matches_the_training_normalisation(full_mnist):
    digits = full_mnist.test_images[:5]
    assert torch.allclose(to_model_input(from_uint8(digits)), normalize(digits), atol=1e-6)
    assert to_model_input(from_uint8(digits[0])).shape == (1, 1, 28, 28)
    assert np.array_equal(to_uint8(from_uint8(digits)), digits.numpy())


# ------------------------------------------------------------- quality bar
N_DIGITS = 840  # 120 per canvas variant


@pytest.fixture(scope="module")
def canvas_digits(full_mnist):
    """Test digits drawn as on a canvas, in turn in each variant, preprocessed."""
    images, labels = full_mnist.test_images[:N_DIGITS], full_mnist.test_labels[:N_DIGITS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: extra threads only fight over a shared CPU
    try:
        pixels = torch.zeros(N_DIGITS, IMAGE_SIZE, IMAGE_SIZE)
        for v, variant in enumerate(CANVAS_VARIANTS):
            chosen = torch.arange(v, N_DIGITS, len(CANVAS_VARIANTS))
            for i, picture in zip(chosen, render_many(images[chosen], **variant)):
                pixels[i] = mnist_style(picture)
    finally:
        torch.set_num_threads(threads)
    return pixels, labels


@pytest.mark.parametrize("name", ["cnn", "lstm", "transformer"])
def test_shipped_models_keep_97_percent_on_canvas_drawn_digits(canvas_digits, name):
    from bigmodels.models.checkpoints import model_from_checkpoint
    from bigmodels.models.shipped import weights_path

    if not weights_path(name).is_file():
        pytest.fail(f"the shipped {name} weights are missing ({weights_path(name)})")
    model = model_from_checkpoint(weights_path(name))
    pixels, labels = canvas_digits
    with torch.inference_mode():
        predicted = torch.cat([model(to_model_input(pixels[i:i + 256])).argmax(1) for i in range(0, len(pixels), 256)])
    correct = predicted == labels
    accuracy = correct.float().mean().item()
    n = len(CANVAS_VARIANTS)
    per_variant = [round(correct[i::n].float().mean().item(), 3) for i in range(n)]
    print(f"{name}: {accuracy:.4f} on {len(labels)} canvas-drawn test digits; per variant {per_variant}")
    assert accuracy >= 0.97, f"{name}: {accuracy:.2%} < 97% (per variant: {per_variant})"


def test_examples_are_the_first_test_digit_of_each_class(full_mnist):
    from bigmodels.data.digits import first_of_each_class

    labels = full_mnist.test_labels
    indices = first_of_each_class(labels)
    assert [int(labels[i]) for i in indices] == list(range(10))
    for i in indices:  # nothing earlier in the test set has that label
        assert int(labels[i]) not in labels[:i].tolist()
    assert first_of_each_class([3, 1, 3, 1]) == [1, 0]  # classes that do not occur are left out
