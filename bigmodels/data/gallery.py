"""The visitor's hard digits: drawings a model got wrong, kept with their true label.

The sandbox's "wrong? tell it what it was" control adds the digit the models
saw (the 28x28 MNIST-style pixels) here, and the gallery can then be scored by
any model source. On disk, under the data home (``BIGMODELS_HOME``)::

    <home>/gallery/index.json          {"version": 1, "items": [{"id", "label", "file", "created"}, ...]}
    <home>/gallery/<label>-<id>.png     28x28 8-bit grey, white ink on black

Every file is written atomically (a reader sees the old file or the new, never
half of one), and everything read back is validated: an index that is not the
expected JSON is rebuilt from the PNG files (their names carry the label), an
entry whose picture is missing, the wrong size or not a PNG is left out and
reported, never shown half-read. The gallery holds at most ``MAX_ITEMS``
digits; adding one more is refused with a reason the page can translate.

The gallery is shared by every visitor of a server. Adding stays open but is
bounded per visitor: an entry remembers who added it (``visitor_key``: a salted
hash of the visitor's address, never the address) and a visitor holds at most
``MAX_PER_VISITOR`` digits. Deleting is the operator's; the page decides who that
is (``bigmodels.base.access``).

No Streamlit here: the page calls it, and tests drive it with bad files.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from bigmodels.data.digits import from_uint8, to_model_input, to_uint8
from bigmodels.models.checkpoints import atomic_write_bytes
from bigmodels.models.nets import IMAGE_SIZE
from bigmodels.base.home import home_dir

GALLERY_DIR = "gallery"
INDEX = "index.json"
VERSION = 1
MAX_ITEMS = 200  # a visitor's collection, not a data set: past this, delete some first
MAX_PER_VISITOR = 20  # digits one visitor (one address) may hold in the shared gallery
MAX_PNG_BYTES = 64 * 1024  # a 28x28 grey PNG is well under 1 KB; anything bigger is not ours
MAX_INDEX_BYTES = 1024 * 1024
ID_PATTERN = re.compile(r"[0-9a-f]{12}")
VISITOR_PATTERN = re.compile(r"[0-9a-f]{16}")
FILE_PATTERN = re.compile(r"(?P<label>[0-9])-(?P<id>[0-9a-f]{12})\.png")
_lock = threading.Lock()  # one server process serves many sessions from threads


class GalleryError(ValueError):
    """A refused change: ``reason`` is "full", "visitor_full", "label", "pixels" or "unknown";
    ``values`` fill the page's message."""

    def __init__(self, reason: str, **values: object):
        super().__init__(f"{reason}: {values}" if values else reason)
        self.reason = reason
        self.values = values


@dataclass(frozen=True)
class GalleryItem:
    id: str
    label: int  # the true digit, as the visitor said
    pixels: torch.Tensor  # (28, 28) float in [0, 1]
    created: float  # seconds since the epoch
    visitor: str | None = None  # visitor_key of whoever added it (None: an operator, or unknown)


@dataclass
class Gallery:
    items: list[GalleryItem]
    problems: list[str] = field(default_factory=list)  # what was unreadable and left out (file names)
    rebuilt: bool = False  # the index was unreadable and was rebuilt from the pictures


def gallery_dir(home: str | os.PathLike | None = None) -> Path:
    return home_dir(home) / GALLERY_DIR


def visitor_key(address: str, home: str | os.PathLike | None = None) -> str:
    """Who added a digit, as the index keeps it: a hash of the visitor's address salted
    per gallery (``<home>/gallery/.salt``), so the index holds no address and its keys
    cannot be matched with another server's."""
    folder = gallery_dir(home)
    salt_file = folder / ".salt"
    try:
        salt = salt_file.read_bytes()
    except OSError:
        salt = b""
    if len(salt) != 16:
        folder.mkdir(parents=True, exist_ok=True)
        with _lock:
            try:
                salt = salt_file.read_bytes()
            except OSError:
                salt = b""
            if len(salt) != 16:
                salt = secrets.token_bytes(16)
                atomic_write_bytes(salt_file, salt)
    return hashlib.sha256(salt + address.encode("utf-8", "replace")).hexdigest()[:16]


def _file_name(label: int, item_id: str) -> str:
    return f"{label}-{item_id}.png"


def _png(pixels: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(pixels), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def _read_png(path: Path) -> torch.Tensor | None:
    """The digit in ``path``, or None unless it is a small 28x28 8-bit grey PNG."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_PNG_BYTES:
            return None
        with Image.open(path) as image:
            if image.format != "PNG" or image.mode != "L" or image.size != (IMAGE_SIZE, IMAGE_SIZE):
                return None
            image.load()
            return from_uint8(np.array(image))  # a copy: writable, detached from the file
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


Entry = tuple[str, int, float, "str | None"]  # id, label, created, visitor


def _valid_entry(entry: object) -> Entry | None:
    if not isinstance(entry, dict):
        return None
    item_id, label, created = entry.get("id"), entry.get("label"), entry.get("created", 0.0)
    if not isinstance(item_id, str) or not ID_PATTERN.fullmatch(item_id):
        return None
    if type(label) is not int or not 0 <= label <= 9:  # bool is no label
        return None
    if not isinstance(created, (int, float)) or isinstance(created, bool) or not np.isfinite(created):
        created = 0.0
    if entry.get("file") != _file_name(label, item_id):  # the index names only its own files
        return None
    visitor = entry.get("visitor")
    if not isinstance(visitor, str) or not VISITOR_PATTERN.fullmatch(visitor):
        visitor = None
    return item_id, label, float(created), visitor


def _read_index(folder: Path) -> list[Entry] | None:
    """The index's entries, or None when it is missing or not the expected JSON."""
    path = folder / INDEX
    try:
        if not path.is_file() or path.stat().st_size > MAX_INDEX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("items"), list):
        return None
    entries, seen = [], set()
    for raw in data["items"]:
        entry = _valid_entry(raw)
        if entry is not None and entry[0] not in seen:
            seen.add(entry[0])
            entries.append(entry)
    return entries


def _scan(folder: Path) -> list[Entry]:
    """Entries rebuilt from the picture files' names (oldest first)."""
    found = []
    for path in folder.glob("*.png"):
        match = FILE_PATTERN.fullmatch(path.name)
        if match:
            try:
                created = path.stat().st_mtime
            except OSError:
                continue
            found.append((match["id"], int(match["label"]), created, None))
    return sorted(found, key=lambda e: (e[2], e[0]))


def _write_index(folder: Path, entries: list[Entry]) -> None:
    items = [{"id": i, "label": label, "file": _file_name(label, i), "created": created,
              **({"visitor": visitor} if visitor else {})} for i, label, created, visitor in entries]
    atomic_write_bytes(folder / INDEX, (json.dumps({"version": VERSION, "items": items}, indent=1) + "\n").encode())


def _entries(folder: Path) -> tuple[list[Entry], bool]:
    """(entries, rebuilt): the index, or the pictures when the index cannot be read."""
    entries = _read_index(folder)
    if entries is not None:
        return entries, False
    scanned = _scan(folder)
    return scanned, bool(scanned) or (folder / INDEX).exists()


def load(home: str | os.PathLike | None = None) -> Gallery:
    """Every readable digit in the gallery, oldest first, and what was left out."""
    folder = gallery_dir(home)
    if not folder.is_dir():
        return Gallery([])
    entries, rebuilt = _entries(folder)
    items, problems = [], []
    for item_id, label, created, visitor in entries:
        pixels = _read_png(folder / _file_name(label, item_id))
        if pixels is None:
            problems.append(_file_name(label, item_id))
        else:
            items.append(GalleryItem(item_id, label, pixels, created, visitor))
    return Gallery(items, problems, rebuilt)


def add(pixels: torch.Tensor, label: int, home: str | os.PathLike | None = None,
        visitor: str | None = None) -> GalleryItem:
    """Keep ``pixels`` (28x28 in [0, 1]) with its true ``label``; raises ``GalleryError``.
    ``visitor`` (a ``visitor_key``) may hold at most MAX_PER_VISITOR digits; None (an
    operator) is bounded by MAX_ITEMS only."""
    if type(label) is not int or not 0 <= label <= 9:
        raise GalleryError("label", label=label)
    if not isinstance(pixels, torch.Tensor) or tuple(pixels.shape) != (IMAGE_SIZE, IMAGE_SIZE) \
            or not torch.isfinite(pixels).all():
        raise GalleryError("pixels")
    folder = gallery_dir(home)
    with _lock:
        entries, _ = _entries(folder) if folder.is_dir() else ([], False)
        if len(entries) >= MAX_ITEMS:
            raise GalleryError("full", limit=MAX_ITEMS)
        if visitor is not None and sum(e[3] == visitor for e in entries) >= MAX_PER_VISITOR:
            raise GalleryError("visitor_full", limit=MAX_PER_VISITOR)
        item = GalleryItem(secrets.token_hex(6), label, pixels.detach().float().clamp(0, 1).cpu(), time.time(), visitor)
        atomic_write_bytes(folder / _file_name(label, item.id), _png(item.pixels))
        _write_index(folder, entries + [(item.id, item.label, item.created, visitor)])
    return item


def remove(item_id: str, home: str | os.PathLike | None = None) -> None:
    """Delete one digit (its picture and its index entry); raises ``GalleryError`` for an unknown id."""
    if not isinstance(item_id, str) or not ID_PATTERN.fullmatch(item_id):
        raise GalleryError("unknown")
    folder = gallery_dir(home)
    with _lock:
        entries, _ = _entries(folder) if folder.is_dir() else ([], False)
        kept = [e for e in entries if e[0] != item_id]
        if len(kept) == len(entries):
            raise GalleryError("unknown")
        _write_index(folder, kept)
        for entry in entries:
            if entry[0] == item_id:
                (folder / _file_name(entry[1], item_id)).unlink(missing_ok=True)


# ------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class GalleryScore:
    predictions: list[int]  # per item, in the gallery's order
    confidences: list[float]
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / len(self.predictions) if self.predictions else None


@torch.inference_mode()
def score(model: nn.Module, items: list[GalleryItem], batch: int = 256) -> GalleryScore:
    """``model``'s answer for every gallery digit (one batched pass) and how many are right."""
    predictions, confidences = [], []
    device = next(model.parameters()).device
    for start in range(0, len(items), batch):
        chunk = torch.stack([item.pixels for item in items[start:start + batch]])
        probs = torch.softmax(model(to_model_input(chunk).to(device)).float(), 1).cpu()
        top, digit = probs.max(1)
        predictions += digit.tolist()
        confidences += top.tolist()
    correct = sum(p == item.label for p, item in zip(predictions, items))
    return GalleryScore(predictions, confidences, correct)
