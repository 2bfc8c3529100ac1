import pytest
import torch
import torch.nn.functional as F

from bigmodels.models.checkpoints import model_from_checkpoint
from bigmodels.analysis.perturbations import (
    Perturbation, apply_shared, fgsm, gaussian_noise, rotate, shift, thickness,
)
from bigmodels.data.digits import centre_of_mass, from_uint8, to_model_input
from bigmodels.models.registry import create_model
from bigmodels.models.shipped import weights_path


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small single-image ops: a second thread only contends on a shared CPU
    yield
    torch.set_num_threads(before)


def stroke():
    """An asymmetric 'L' so that every rotation and shift is distinguishable."""
    x = torch.zeros(28, 28)
    x[6:22, 10:13] = 1.0
    x[19:22, 10:20] = 0.6
    return x


# ---------------------------------------------------------------- geometry
def test_rotation_by_quarter_turns_is_exact_and_anticlockwise():
    x = stroke()
    assert torch.equal(rotate(x, 0), x)
    quarter = rotate(x, 90)
    assert torch.allclose(quarter, torch.rot90(x, 1, dims=(0, 1)), atol=1e-5)  # rot90 k=1: anticlockwise
    assert torch.allclose(rotate(rotate(x, 180), 180), x, atol=1e-5)


def test_rotation_keeps_the_ink_near_the_centre_and_in_range():
    x = stroke()
    turned = rotate(x, 30)
    assert turned.min() >= 0 and turned.max() <= 1
    assert turned.sum().item() == pytest.approx(x.sum().item(), rel=0.05)  # bilinear keeps the ink, roughly
    assert not torch.allclose(turned, x)


def test_shift_moves_by_whole_pixels_and_loses_what_falls_off():
    x = stroke()
    moved = shift(x, 3, -2)
    assert torch.equal(moved[4:20, 13:16], x[6:22, 10:13])
    r0, c0 = centre_of_mass(x)
    r1, c1 = centre_of_mass(moved)
    assert (r1 - r0, c1 - c0) == (pytest.approx(-2), pytest.approx(3))
    assert torch.equal(shift(x, 0, 0), x)
    assert shift(x, 28, 0).sum() == 0
    assert shift(x, -15, 0).sum() < x.sum()  # ink pushed past the left edge is gone, not wrapped


def test_thickness_dilates_and_erodes():
    dot = torch.zeros(28, 28)
    dot[14, 14] = 1.0
    grown = thickness(dot, 1)
    assert grown.sum() == 9 and torch.equal(grown[13:16, 13:16], torch.ones(3, 3))
    assert thickness(grown, -1).sum() == 1  # erosion undoes one dilation of a blob
    x = stroke()
    thick, thin = thickness(x, 2), thickness(x, -1)
    assert torch.all(thick >= x) and torch.all(thin <= x)
    assert thick.sum() > x.sum() > thin.sum()
    assert torch.equal(thickness(x, 0), x)


def test_noise_is_seeded_bounded_and_of_the_asked_size():
    grey = torch.full((28, 28), 0.5)
    a, b = gaussian_noise(grey, 0.1, seed=1), gaussian_noise(grey, 0.1, seed=1)
    assert torch.equal(a, b)  # the same noise on every rerun
    assert not torch.equal(a, gaussian_noise(grey, 0.1, seed=2))
    assert (a - grey).std().item() == pytest.approx(0.1, rel=0.2)
    loud = gaussian_noise(grey, 1.0, seed=0)
    assert loud.min() >= 0 and loud.max() <= 1
    assert torch.equal(gaussian_noise(grey, 0.0), grey)


def test_perturbations_never_change_their_input():
    x = stroke()
    before = x.clone()
    for out in (rotate(x, 20), shift(x, 1, 1), thickness(x, 1), thickness(x, -1), gaussian_noise(x, 0.2),
                apply_shared(x, Perturbation(rotation=10, shift_x=1, thickness=1, noise=0.1))):
        assert out is not x
    assert torch.equal(x, before)


# ------------------------------------------------------------------- FGSM
def test_fgsm_is_a_bounded_step_that_raises_the_loss():
    torch.manual_seed(0)
    model = create_model("cnn").eval()
    x = stroke()
    with torch.no_grad():
        logits = model(to_model_input(x))
    label = int(logits.argmax())
    adv = fgsm(model, x, 0.05)
    assert (adv - x).abs().max() <= 0.05 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        before = F.cross_entropy(logits, torch.tensor([label]))
        after = F.cross_entropy(model(to_model_input(adv)), torch.tensor([label]))
    assert after > before
    assert torch.equal(fgsm(model, x, 0.0), x)
    assert all(p.grad is None for p in model.parameters())  # a cached model stays clean


def test_fgsm_targets_the_label_it_is_given():
    torch.manual_seed(0)
    model = create_model("cnn").eval()
    x = stroke()
    a, b = fgsm(model, x, 0.1, label=1), fgsm(model, x, 0.1, label=8)
    assert not torch.equal(a, b)


def test_fgsm_breaks_the_shipped_cnn_that_clean_digits_do_not(full_mnist):
    if not weights_path("cnn").is_file():
        pytest.fail("the shipped cnn weights are missing")
    model = model_from_checkpoint(weights_path("cnn"))
    images, labels = from_uint8(full_mnist.test_images[:100]), full_mnist.test_labels[:100]
    with torch.no_grad():
        clean = (model(to_model_input(images)).argmax(1) == labels).float().mean().item()
    attacked = torch.stack([fgsm(model, x, 0.2) for x in images])
    with torch.no_grad():
        robust = (model(to_model_input(attacked)).argmax(1) == labels).float().mean().item()
    assert clean >= 0.95
    assert robust < clean - 0.3, (clean, robust)  # a visible, real effect -- the point of the demo


# ------------------------------------------------------------- the request
def test_perturbation_ranges_are_enforced():
    assert Perturbation().problems() == []
    assert Perturbation().is_identity and Perturbation(noise_seed=5).is_identity
    assert not Perturbation(epsilon=0.1).is_identity
    assert not Perturbation(epsilon=0.1).changes_shared and Perturbation(epsilon=0.1, shift_x=1).changes_shared
    bad = Perturbation(rotation=400, shift_x=30, thickness=-9, noise=-1, epsilon=2)
    assert len(bad.problems()) == 5
    with pytest.raises(ValueError, match="rotation"):
        apply_shared(stroke(), bad)


def test_shared_perturbations_apply_in_order():
    x = stroke()
    p = Perturbation(rotation=15, shift_x=2, shift_y=-1, thickness=1, noise=0.05, noise_seed=3)
    expected = gaussian_noise(shift(rotate(thickness(x, 1), 15), 2, -1), 0.05, 3)
    assert torch.equal(apply_shared(x, p), expected)
    assert torch.equal(apply_shared(x, Perturbation()), x)
