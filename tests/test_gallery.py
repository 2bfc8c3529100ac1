"""The visitor's gallery of hard digits (bigmodels/data/gallery.py): kept with their
labels, deleted, scored by a model -- and nothing read back is trusted."""
from __future__ import annotations

import json

import pytest
import torch

from bigmodels.data import gallery
from bigmodels.data.gallery import GalleryError, add, gallery_dir, load, remove, score


def digit(seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.rand(28, 28) > 0.7).float()


def test_a_kept_digit_comes_back_with_its_label_and_pixels(tmp_path):
    item = add(digit(1), 3, tmp_path)
    found = load(tmp_path)
    assert [(i.id, i.label) for i in found.items] == [(item.id, 3)]
    assert torch.equal(found.items[0].pixels, digit(1))  # 0/1 ink survives the 8-bit PNG exactly
    assert found.problems == [] and not found.rebuilt
    files = sorted(p.name for p in gallery_dir(tmp_path).iterdir())
    assert files == sorted(["index.json", f"3-{item.id}.png"])  # no temporary files left behind
    index = json.loads((gallery_dir(tmp_path) / "index.json").read_text())
    assert index["version"] == 1 and index["items"][0]["file"] == f"3-{item.id}.png"


def test_the_home_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGMODELS_HOME", str(tmp_path))
    add(digit(), 7)
    assert gallery_dir() == tmp_path / "gallery" and len(load().items) == 1


def test_an_empty_or_missing_gallery_is_empty(tmp_path):
    assert load(tmp_path).items == [] and load(tmp_path).problems == []


def test_delete_removes_the_picture_and_the_entry(tmp_path):
    a, b = add(digit(1), 1, tmp_path), add(digit(2), 2, tmp_path)
    remove(a.id, tmp_path)
    assert [i.id for i in load(tmp_path).items] == [b.id]
    assert not (gallery_dir(tmp_path) / f"1-{a.id}.png").exists()
    with pytest.raises(GalleryError) as err:
        remove(a.id, tmp_path)  # already gone
    assert err.value.reason == "unknown"
    for bad in ("../index", "", "zzzzzzzzzzzz", None):
        with pytest.raises(GalleryError):
            remove(bad, tmp_path)


@pytest.mark.parametrize("label", [-1, 10, 3.0, "3", True, None])
def test_only_a_digit_is_a_label(tmp_path, label):
    with pytest.raises(GalleryError) as err:
        add(digit(), label, tmp_path)
    assert err.value.reason == "label"
    assert load(tmp_path).items == []


@pytest.mark.parametrize("pixels", [torch.zeros(27, 28), torch.zeros(1, 28, 28), torch.full((28, 28), float("nan")),
                                    [[0.0] * 28] * 28])
def test_only_a_28x28_digit_is_kept(tmp_path, pixels):
    with pytest.raises(GalleryError) as err:
        add(pixels, 1, tmp_path)
    assert err.value.reason == "pixels"


def test_the_gallery_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery, "MAX_ITEMS", 3)
    for k in range(3):
        add(digit(k), k, tmp_path)
    with pytest.raises(GalleryError) as err:
        add(digit(9), 9, tmp_path)
    assert err.value.reason == "full" and err.value.values == {"limit": 3}
    assert len(load(tmp_path).items) == 3


@pytest.mark.parametrize("index", [b"{not json", b"\xff\xfe\x00", b"[]", b'{"version": 99, "items": []}',
                                   b'{"version": 1, "items": "many"}'])
def test_an_unreadable_index_is_rebuilt_from_the_pictures(tmp_path, index):
    kept = [add(digit(k), k, tmp_path) for k in range(3)]
    (gallery_dir(tmp_path) / "index.json").write_bytes(index)
    found = load(tmp_path)
    assert found.rebuilt and sorted(i.id for i in found.items) == sorted(k.id for k in kept)
    assert {i.id: i.label for i in found.items} == {k.id: k.label for k in kept}  # labels from the file names
    add(digit(5), 5, tmp_path)  # writing again makes a good index
    assert not load(tmp_path).rebuilt and len(load(tmp_path).items) == 4


def test_bad_entries_are_left_out(tmp_path):
    good = add(digit(1), 4, tmp_path)
    path = gallery_dir(tmp_path) / "index.json"
    index = json.loads(path.read_text())
    entry = index["items"][0]
    index["items"] += [
        {**entry},  # the same id twice
        {**entry, "id": "../../etc/passwd"},
        {**entry, "label": 11},
        {**entry, "label": 5},  # its file name says 4
        {**entry, "file": "../elsewhere.png"},
        "not an entry",
        {"id": "abcdefabcdef", "label": 2, "file": "2-abcdefabcdef.png"},  # picture missing
    ]
    path.write_text(json.dumps(index))
    found = load(tmp_path)
    assert [i.id for i in found.items] == [good.id]
    assert found.problems == ["2-abcdefabcdef.png"]


@pytest.mark.parametrize("content", ["text", "rgb", "big", "truncated", "empty"])
def test_a_corrupt_picture_is_reported_not_shown(tmp_path, content):
    from PIL import Image

    item = add(digit(1), 6, tmp_path)
    picture = gallery_dir(tmp_path) / f"6-{item.id}.png"
    if content == "text":
        picture.write_text("not a png")
    elif content == "rgb":
        Image.new("RGB", (28, 28)).save(picture, "PNG")
    elif content == "big":
        Image.new("L", (280, 280)).save(picture, "PNG")
    elif content == "truncated":
        picture.write_bytes(picture.read_bytes()[:40])
    else:
        picture.write_bytes(b"")
    found = load(tmp_path)
    assert found.items == [] and found.problems == [picture.name]


def test_an_oversized_file_is_not_opened(tmp_path, monkeypatch):
    item = add(digit(1), 6, tmp_path)
    monkeypatch.setattr(gallery, "MAX_PNG_BYTES", 10)
    assert load(tmp_path).problems == [f"6-{item.id}.png"]


def test_scoring_counts_the_right_answers():
    class Always(torch.nn.Module):  # says 3, sure of it
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            logits = torch.zeros(x.shape[0], 10)
            logits[:, 3] = 5.0
            return logits + 0 * self.w

    items = [gallery.GalleryItem(f"{k:012x}", label, digit(k), 0.0) for k, label in enumerate([3, 1, 3, 3])]
    result = score(Always(), items, batch=3)  # two batches
    assert result.predictions == [3, 3, 3, 3] and result.correct == 3 and result.accuracy == 0.75
    assert all(c > 0.9 for c in result.confidences)
    assert score(Always(), []).accuracy is None


def test_the_shipped_cnn_reads_real_test_digits_in_the_gallery(tmp_path, full_mnist):
    from bigmodels.data.digits import from_uint8
    from bigmodels.models.checkpoints import model_from_checkpoint
    from bigmodels.models.shipped import weights_path

    for k in range(10):
        add(from_uint8(full_mnist.test_images[k]), int(full_mnist.test_labels[k]), tmp_path)
    result = score(model_from_checkpoint(weights_path("cnn")), load(tmp_path).items)
    assert result.correct >= 9  # the PNG round trip keeps the digits readable


def test_each_visitor_holds_at_most_max_per_visitor_and_the_index_keeps_no_address(tmp_path, monkeypatch):
    monkeypatch.setattr(gallery, "MAX_PER_VISITOR", 3)
    one, other = gallery.visitor_key("203.0.113.7", tmp_path), gallery.visitor_key("203.0.113.8", tmp_path)
    assert one != other and one == gallery.visitor_key("203.0.113.7", tmp_path)  # stable per address
    for _ in range(3):
        add(digit(), 1, tmp_path, visitor=one)
    with pytest.raises(GalleryError) as refused:
        add(digit(), 1, tmp_path, visitor=one)
    assert refused.value.reason == "visitor_full" and refused.value.values == {"limit": 3}
    add(digit(), 2, tmp_path, visitor=other)  # someone else still may
    add(digit(), 3, tmp_path)  # and an operator, bounded by MAX_ITEMS only
    found = load(tmp_path)
    assert [i.visitor for i in found.items] == [one, one, one, other, None]
    index = (gallery_dir(tmp_path) / "index.json").read_text()
    assert "203.0.113" not in index and one in index
    remove(found.items[0].id, tmp_path)  # a deleted digit frees its visitor's place
    add(digit(), 1, tmp_path, visitor=one)
