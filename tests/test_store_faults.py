"""The run store on a disk that fails as real disks do: mounted read-only, or full.

Root ignores file modes, so chmod cannot make a store read-only in CI (which runs
as root). Each case runs in a child process in a private mount namespace
(``unshare -m``): a read-only bind mount over the store's folder, or a 1 MiB
tmpfs filled to the last byte. Nothing outside the child sees either mount.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bigmodels.cluster.control import dispatcher_lock
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from bigmodels.train.config import default_config
from tests.conftest import REPO, unavailable


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(autouse=True)
def private_mounts():
    """Every test here mounts in a private namespace: a failure under CI (root), not a skip."""
    if not _unshare_works():
        unavailable("needs root to mount in a private namespace (unshare -m); CI runs as root")

#: In the child: open the launcher page as a visitor would, and try to queue a run.
PAGE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from streamlit.testing.v1 import AppTest
from bigmodels.runs.store import RunStore, StoreError
from bigmodels.runs.queue import submit
from bigmodels.train.config import default_config
at = AppTest.from_file(sys.argv[1] + "/pages/launcher.py", default_timeout=120).run()
rows = len(at.dataframe[0].value) if at.dataframe else 0
store = RunStore()
from bigmodels.cluster.control import dispatcher_alive
alive = dispatcher_alive(store)  # the lock is asked without opening it for writing
try:
    submit(store, default_config("cnn", epochs=1, device="cpu"))
    refused = None
except StoreError as exc:
    refused = str(exc)
print("RESULT " + json.dumps({"exceptions": [str(e.value) for e in at.exception], "errors": [e.value for e in at.error],
                               "rows": rows, "listed": len(store.list_runs()), "refused": refused,
                               "alive": alive}))
"""


def _populate(home) -> list[str]:
    """Three runs as a store holds them: one finished, one queued, one left 'running' by a
    dispatcher that died (its pid is gone); and the dispatcher's lock file."""
    store = RunStore(home)
    done = submit(store, default_config("cnn", epochs=1, device="cpu")).run
    store.claim(done.id, "w", 1)
    store.finish(done.id, "succeeded")
    queued = submit(store, default_config("cnn", epochs=2, device="cpu")).run
    orphan = submit(store, default_config("cnn", epochs=3, device="cpu")).run
    store.claim(orphan.id, "w", 2**22 + 12345)  # no such process
    lock = dispatcher_lock(store)
    lock.acquire()
    lock.release()
    return [done.id, queued.id, orphan.id]


def _page_in_namespace(shell: str, home: str, tmp_path) -> dict:
    env = {**os.environ, "BIGMODELS_HOME": home, "HOME": str(tmp_path)}
    env.pop("BIGMODELS_OPERATOR_TOKEN", None)
    script = tmp_path / "page.py"
    script.write_text(PAGE)
    out = subprocess.run(["unshare", "-m", "sh", "-ec", f'{shell}\nexec "{sys.executable}" "{script}" "{REPO}"'],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_a_read_only_store_is_listed_and_the_page_says_why(tmp_path):
    home = tmp_path / "home"
    ids = _populate(home)
    before = (home / "runs.sqlite").read_bytes()
    seen = _page_in_namespace(f'mount --bind "{home}" "{home}"\nmount -o remount,bind,ro "{home}"',
                              str(home), tmp_path)
    assert seen["exceptions"] == []  # was: OSError: [Errno 30] Read-only file system: '.../locks/dispatcher.lock'
    assert any("disk is read-only" in e and str(home) in e for e in seen["errors"]), seen["errors"]
    assert seen["rows"] == 3 and seen["listed"] == 3  # every run listed
    assert seen["refused"] and "read-only" in seen["refused"]  # and a launch says why it cannot queue
    assert seen["alive"] is False
    store = RunStore(home)  # outside the namespace: nothing was changed, nothing lost
    assert [r.status for r in sorted(store.list_runs(), key=lambda r: ids.index(r.id))] == \
        ["succeeded", "queued", "running"]
    assert (home / "runs.sqlite").read_bytes() == before


def test_a_full_disk_is_called_full_with_the_free_space_and_the_runs_stay_listed(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = tmp_path / "made"  # the store is made outside, then copied onto the small disk and the disk filled
    _populate(made)
    home = mnt / "home"
    seen = _page_in_namespace(f'mount -t tmpfs -o size=1m tmpfs "{mnt}"\ncp -r "{made}" "{home}"\n'
                              f'dd if=/dev/zero of="{mnt}/fill" bs=4k 2>/dev/null || true',
                              str(home), tmp_path)
    assert seen["exceptions"] == []
    assert any(e.startswith("The disk is full (0 B free") for e in seen["errors"]), seen["errors"]
    assert not any("disk failed" in e for e in seen["errors"])  # the old words for it
    assert seen["rows"] == 3 and seen["listed"] == 3
    assert seen["refused"] and "full" in seen["refused"] and "0 B free" in seen["refused"]
