"""Server readiness: what a hostile or careless visitor can send never reaches
the file system or the unpickler unchecked."""
import io
import os
import pickle
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from bigmodels.models.checkpoints import CheckpointError, load_checkpoint, model_from_checkpoint
from bigmodels.runs.store import InvalidRunId, RunStore, check_run_id
from bigmodels.models.shipped import weights_path
from bigmodels.train.config import default_config
from bigmodels.data.uploads import MAX_UPLOAD_BYTES, UploadError, read_image
from bigmodels.runs.queue import submit

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("bad", ["../escape", "../../etc/passwd", "/etc/passwd", "a/b", "..", "", "x" * 200,
                                 "cnn-1\x00.pt", "CNN;rm", " cnn"])
def test_run_ids_from_the_ui_never_reach_the_file_system(tmp_path, bad):
    store = RunStore(tmp_path)
    with pytest.raises(InvalidRunId):
        store.checkpoint_path(bad)
    for action in (store.get, store.delete, store.request_cancel, store.resume, store.epochs, store.logs):
        with pytest.raises(InvalidRunId):
            action(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in RunStore(tmp_path).home.iterdir())


def test_issued_run_ids_pass_the_check(tmp_path):
    run = submit(RunStore(tmp_path), default_config("cnn", epochs=1, train_subset=100, device="cpu")).run
    assert check_run_id(run.id) == run.id
    assert RunStore(tmp_path).checkpoint_path(run.id).parent == RunStore(tmp_path).checkpoints_dir


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/bigmodels-pwned",))


def test_a_tampered_checkpoint_is_refused_with_a_message(tmp_path):
    real = load_checkpoint(weights_path("cnn"))
    evil = tmp_path / "cnn.pt"
    torch.save({**real, "extra": Exploit()}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        model_from_checkpoint(evil)
    assert not Path("/tmp/bigmodels-pwned").exists()
    # a raw pickle renamed to .pt is no checkpoint archive at all
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(raw)
    # flipped bytes inside the archive
    damaged = tmp_path / "damaged.pt"
    data = bytearray(weights_path("cnn").read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        model_from_checkpoint(damaged)


def test_every_checkpoint_load_in_the_package_is_weights_only():
    offenders = []
    for path in (REPO / "bigmodels").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == []


def png_bytes(size, mode="L"):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def test_uploads_are_sniffed_capped_and_bombs_refused():
    assert read_image(png_bytes((64, 64))).shape[:2] == (64, 64)
    for data in (b"", b"GIF89a not really", b"%PDF-1.7\n" + b"0" * 100, b"\x89PNG\r\n\x1a\n" + b"\x00" * 20):
        with pytest.raises(UploadError):
            read_image(data)
    with pytest.raises(UploadError):
        read_image(b"\x00" * (MAX_UPLOAD_BYTES + 1))
    bomb = png_bytes((20_000, 20_000))  # 400 megapixels that compress to a few hundred KB
    assert len(bomb) < MAX_UPLOAD_BYTES
    with pytest.raises(UploadError):
        read_image(bomb)


def test_a_png_named_jpg_or_a_zip_named_png_is_judged_by_content():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.txt", "hello")
    with pytest.raises(UploadError):
        read_image(buffer.getvalue())


def test_server_settings_keep_protection_on():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] <= MAX_UPLOAD_BYTES / 2**20
    assert config["browser"]["gatherUsageStats"] is False
    assert "enableCORS" not in config["server"] or config["server"]["enableCORS"] is True


def test_operator_token_is_compared_in_constant_time_and_never_echoed():
    from bigmodels.base.access import load_policy

    source = (REPO / "bigmodels" / "base" / "access.py").read_text()
    assert "hmac.compare_digest" in source
    policy = load_policy(environ={"BIGMODELS_OPERATOR_TOKEN": "s3cret-token-value"}, secrets_files=[])
    assert "s3cret-token-value" not in repr(policy) and "s3cret-token-value" not in str(policy)
