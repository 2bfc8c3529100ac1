"""The run store: every launched training run, its metrics, logs and files.

An API over runs and nothing else, as MLflow's tracking store is: it knows
neither training nor the UI (a run's config is a JSON object to it; what is
valid is the launch plan's business, ``bigmodels.train.plan``, and what a run
means to a page is the page's), and it imports no torch.

One SQLite database in WAL mode under the data home (``BIGMODELS_HOME``,
default ``./runs``) is the single source of truth. The launcher page only reads
and writes rows here; the dispatcher (``bigmodels.cluster.dispatcher``) claims
queued runs and writes what the device sessions stream back. Any number of
browser tabs, users and processes see the same state, and a run whose
dispatcher died is marked so.

Layout of the home::

    runs.sqlite            runs, per-step and per-epoch metrics, logs
    checkpoints/<id>.pt    a run's resumable checkpoint (written every epoch)
    locks/                 the dispatcher's lock (see bigmodels.cluster.control)
    logs/                  the dispatcher's output
    dispatcher/state.json  what the dispatcher knows of the cluster, for the launcher
    ray/                   the embedded Ray head's address and log

Every connection is opened per operation (SQLite connections must not cross
threads, and Streamlit runs each session in its own thread); writes use
``BEGIN IMMEDIATE`` so two writers serialise instead of failing half way.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

from bigmodels.base.formatting import format_bytes
from bigmodels.base.problems import Problem

from bigmodels.base.home import home_dir


DB_NAME = "runs.sqlite"

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    submission TEXT UNIQUE,
    model TEXT NOT NULL,
    config TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    world_size INTEGER NOT NULL DEFAULT 1,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    started_at REAL,
    loop_started_at REAL,
    first_step_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    session TEXT,
    dispatcher_pid INTEGER,
    step INTEGER NOT NULL DEFAULT 0,
    start_step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER,
    epoch INTEGER NOT NULL DEFAULT 0,
    best_accuracy REAL,
    final_accuracy REAL,
    samples_per_second REAL,
    lr REAL,
    memory_bytes INTEGER,
    memory_kind TEXT,
    checkpoint TEXT,
    resume INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    device TEXT,
    device_name TEXT,
    data_source TEXT,
    versions TEXT,
    git_commit TEXT,
    name TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    note TEXT NOT NULL DEFAULT '',
    info_at REAL,
    needs TEXT,
    memory_need INTEGER,
    node TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, target, queued_at);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash, world_size, status);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    loss REAL, lr REAL, t REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL, epoch INTEGER NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, t REAL NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, id);
CREATE TABLE IF NOT EXISTS system (
    run_id TEXT NOT NULL, t REAL NOT NULL, cpu_percent REAL, memory_bytes INTEGER,
    gpu_percent REAL, gpu_memory_bytes INTEGER,
    PRIMARY KEY (run_id, t)
) WITHOUT ROWID;
DROP TABLE IF EXISTS workers;  -- left by the worker API that device sessions replaced
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    registered_at REAL NOT NULL,
    payload TEXT NOT NULL,
    digest TEXT NOT NULL,
    runs TEXT NOT NULL DEFAULT '[]',
    frozen_at REAL
);
CREATE INDEX IF NOT EXISTS predictions_by_sweep ON predictions (sweep, registered_at)
"""
# A registered prediction is frozen from the moment one of its runs starts: the database
# itself refuses to change or delete it then (a trigger, not only this module's methods), and
# its runs are attached once. ``frozen_at`` is the first start, kept even if the run is deleted.
# (Trigger bodies hold ";", so they are not in _SCHEMA, which ensure_schema splits at ";".)
_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS predictions_frozen BEFORE UPDATE ON predictions
       WHEN OLD.frozen_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'prediction frozen: its run has started'); END""",
    """CREATE TRIGGER IF NOT EXISTS predictions_kept BEFORE DELETE ON predictions
       WHEN OLD.frozen_at IS NOT NULL
       BEGIN SELECT RAISE(ABORT, 'prediction frozen: its run has started'); END""",
    """CREATE TRIGGER IF NOT EXISTS predictions_runs_once BEFORE UPDATE OF runs ON predictions
       WHEN OLD.runs != '[]' AND NEW.runs != OLD.runs
       BEGIN SELECT RAISE(ABORT, 'prediction frozen: its runs are attached once'); END""",
    """CREATE TRIGGER IF NOT EXISTS predictions_freeze AFTER UPDATE OF started_at ON runs
       WHEN NEW.started_at IS NOT NULL
       BEGIN UPDATE predictions SET frozen_at = NEW.started_at
             WHERE frozen_at IS NULL AND EXISTS (SELECT 1 FROM json_each(predictions.runs) WHERE value = NEW.id);
       END""",
)


# Columns added after the first release of the schema: an older store gets them on open.
_ADDED_COLUMNS = {"start_step": "INTEGER NOT NULL DEFAULT 0", "loop_started_at": "REAL",
                  "name": "TEXT", "tags": "TEXT NOT NULL DEFAULT '[]'", "note": "TEXT NOT NULL DEFAULT ''",
                  "info_at": "REAL", "needs": "TEXT", "node": "TEXT", "memory_need": "INTEGER"}
# Columns renamed since: the session that trained a run, the pid of the process that recorded it.
_RENAMED_COLUMNS = {"worker": "session", "worker_pid": "dispatcher_pid"}

# What a person may write about a run (its name, tags and note), at most.
MAX_NAME = 80
MAX_TAGS = 10
MAX_TAG = 32
MAX_NOTE = 2000
SYSTEM_TABLES = ("steps", "epochs", "logs", "system")  # per-run tables a delete empties
#: Below this much free space the store's disk counts as full: SQLite could not create the
#: WAL's index file (a 1 MiB tmpfs failed so) and no checkpoint would fit.
LOW_SPACE_BYTES = 1 << 20
DISK_READ_ONLY, DISK_FULL = "launcher.store.read_only", "launcher.store.full"  # disk_problem's messages
#: How a store on a disk that cannot be written is read: read-only, then, where SQLite cannot
#: even create the WAL index it reads through, as an immutable file (commits still in the WAL
#: are not seen then: the newest moments of a run, at most).
_READ_ONLY_OPENS = ("mode=ro", "immutable=1")


_SCHEMA_LOCK = threading.Lock()
SCHEMA_VERSION = 4  # PRAGMA user_version of a file this code has set up; raise it when _SCHEMA changes


def schema_version(path: Path) -> int:
    """The ``PRAGMA user_version`` of the SQLite file at ``path`` (0: never set up, or a new file)."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def ensure_schema(path: Path, script: str, version: int,
                  upgrade: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Run ``script`` (a database file's DDL, statements separated by ";") and ``upgrade(db)``
    unless the file at ``path`` already carries ``version``, then stamp it with that version,
    all in one transaction.

    The file itself says whether it is set up, not a memory of its path: a store file deleted
    or replaced while the app runs (an empty one re-created at the same path by a retrying
    dispatcher, say) reads version 0 and is set up again (tests/test_dispatcher.py). Reading
    the version costs one page read, not DDL, on every open. One thread at a time, because
    switching a file to WAL takes it for itself without waiting for a busy one: sessions
    opening a store at once got "database is locked" (tests/test_first_visits.py). The
    service store uses it too. Raises sqlite3.Error where the file cannot be read."""
    with _SCHEMA_LOCK:
        if schema_version(path) == version:
            return
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA journal_mode=WAL")  # outside a transaction, as SQLite requires
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):  # executescript would commit the transaction
                    if statement.strip():
                        db.execute(statement)
                if upgrade is not None:
                    upgrade(db)
                db.execute(f"PRAGMA user_version = {int(version)}")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()


class StoreError(RuntimeError):
    """The run store cannot be opened or read; the message says which file and why."""


class RunStateError(ValueError):
    """An action that the run's current state does not allow (e.g. deleting a running run)."""


class PredictionFrozen(RunStateError):
    """A registered prediction cannot change: one of its runs has started."""


class RunInfoError(ValueError):
    """A name, tag or note that the store does not accept: ``field`` says which
    ("name", "tags", "tag" or "note") and ``limit`` the most it allows."""

    def __init__(self, field: str, limit: int, got: int):
        super().__init__(f"{field}: at most {limit} {'tags' if field == 'tags' else 'characters'}, got {got}")
        self.field, self.limit, self.got = field, limit, got


def clean_info(name: str | None, tags: list[str] | str | None, note: str | None
               ) -> tuple[str | None, list[str], str]:
    """A run's name, tags and note as stored: trimmed, tags split on commas,
    empty ones dropped, duplicates kept once; RunInfoError past the limits."""
    name = (name or "").strip() or None
    if name is not None and len(name) > MAX_NAME:
        raise RunInfoError("name", MAX_NAME, len(name))
    if isinstance(tags, str):
        tags = tags.split(",")
    clean: list[str] = []
    for tag in tags or []:
        tag = " ".join(str(tag).split())
        if len(tag) > MAX_TAG:
            raise RunInfoError("tag", MAX_TAG, len(tag))
        if tag and tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        raise RunInfoError("tags", MAX_TAGS, len(clean))
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise RunInfoError("note", MAX_NOTE, len(note))
    return name, clean, note


# What new_run_id makes: a registry name, a timestamp, a random suffix. Run ids
# arrive from the UI (and URLs) and become file names, so nothing else is let through.
RUN_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,95}")


class InvalidRunId(ValueError):
    """A run id that this store never issued (e.g. ``../x`` or an absolute path)."""


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise InvalidRunId(f"not a run id: {str(run_id)[:100]!r}")
    return run_id


def new_run_id(model: str) -> str:
    """Readable, sortable and unique: ``cnn-261128-220101-3f2a``."""
    return f"{model}-{time.strftime('%y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def device_key(device: str) -> str:
    """A device name as a file-name part: ``cuda:0`` -> ``cuda-0``."""
    return "".join(c if c.isalnum() else "-" for c in device)


def _finite_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


# --------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Run:
    """One row of the ``runs`` table, as the pages and the dispatcher see it."""

    id: str
    model: str
    config: dict[str, Any]
    config_hash: str
    world_size: int
    target: str
    status: str
    created_at: float
    queued_at: float
    started_at: float | None
    loop_started_at: float | None  # the training loop of the latest attempt began: its first step starts
    first_step_at: float | None  # the first step of the latest attempt was done
    finished_at: float | None
    heartbeat_at: float | None
    session: str | None  # the device session that trained it ("inline:PID" for a run trained in-process)
    dispatcher_pid: int | None  # the process that recorded it (a dead one: the run is orphaned)
    step: int
    start_step: int  # global step this attempt began at (non-zero after a resume)
    total_steps: int | None
    epoch: int
    best_accuracy: float | None
    final_accuracy: float | None
    samples_per_second: float | None
    lr: float | None
    memory_bytes: int | None
    memory_kind: str | None
    checkpoint: str | None
    resume: bool
    attempts: int
    cancel_requested: bool
    error: str | None
    device: str | None
    device_name: str | None
    data_source: str | None
    versions: dict[str, str] | None
    git_commit: str | None
    submission: str | None = None
    name: str | None = None  # what a person calls the run (None: its id)
    tags: tuple[str, ...] = ()
    note: str = ""
    info_at: float | None = None  # when the name, tags or note last changed
    needs: str | None = None  # a custom resource its node must offer
    node: str | None = None  # the host that trained it (its latest attempt)
    memory_need: int | None = None  # bytes one process needs on its device, as planned when queued

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Run":
        values = dict(row)
        values["config"] = json.loads(values["config"])
        values["tags"] = tuple(json.loads(values.get("tags") or "[]"))
        values["note"] = values.get("note") or ""
        values["versions"] = json.loads(values["versions"]) if values["versions"] else None
        values["resume"] = bool(values["resume"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def title(self) -> str:
        """Its name, or its id when it has none."""
        return self.name or self.id

    @property
    def progress(self) -> float:
        """Fraction of optimizer steps done (1.0 once succeeded)."""
        if self.status == "succeeded":
            return 1.0
        if not self.total_steps:
            return 0.0
        return min(1.0, self.step / self.total_steps)

    def duration(self, now: float | None = None) -> float | None:
        """Seconds spent running (so far, for a running run)."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the pace since the first step (None before it is known)."""
        if self.status != "running" or not self.total_steps or self.first_step_at is None or self.step < 2:
            return None
        now = now or time.time()
        steps_since_first = self.step - self.start_step - 1  # the pace is measured from the first step on
        if steps_since_first <= 0 or now <= self.first_step_at:
            return None
        rate = steps_since_first / (now - self.first_step_at)
        return (self.total_steps - self.step) / rate

    @property
    def launch_latency(self) -> float | None:
        """Seconds from (re)queueing to the start of the latest attempt's first step."""
        if self.loop_started_at is None:
            return None
        return self.loop_started_at - self.queued_at

    @property
    def first_step_latency(self) -> float | None:
        """Seconds from (re)queueing until the latest attempt's first step was done."""
        if self.first_step_at is None:
            return None
        return self.first_step_at - self.queued_at


def prediction_digest(payload: dict[str, Any], registered_at: float) -> str:
    """SHA-256 of a prediction as registered (its content and time, canonical JSON)."""
    blob = json.dumps({"payload": payload, "registered_at": registered_at}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Prediction:
    """A prediction registered before its runs train (``bigmodels.runs.sweeps.register_check``)."""

    id: str
    sweep: str
    registered_at: float
    payload: dict[str, Any]  # what was predicted: the value, its interval, the fit and the grid it came from
    digest: str
    runs: tuple[str, ...]
    frozen_at: float | None  # when its first run started (None: not yet)

    @property
    def intact(self) -> bool:
        """Its content still hashes to the digest written when it was registered."""
        return prediction_digest(self.payload, self.registered_at) == self.digest

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Prediction":
        return cls(row["id"], row["sweep"], row["registered_at"], json.loads(row["payload"]), row["digest"],
                   tuple(json.loads(row["runs"])), row["frozen_at"])


@dataclass(frozen=True)
class Submission:
    run: Run
    cached: bool  # True: an identical config had already succeeded; nothing was queued


def checkpoint_written(checkpoint: str | None) -> bool:
    """Is there a checkpoint to resume from? A run's ``checkpoint`` names the file its
    first epoch will write; until then Resume starts it over at step 0."""
    return bool(checkpoint) and Path(checkpoint).is_file()


# ------------------------------------------------------------ row helpers
def _find_row(db: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


def _get_row(db: sqlite3.Connection, run_id: str) -> sqlite3.Row:
    """The run's row, or RunStateError: what every action on one run starts with."""
    row = _find_row(db, run_id)
    if row is None:
        raise RunStateError(f"run {run_id} does not exist")
    return row


def _get_run(db: sqlite3.Connection, run_id: str) -> Run:
    return Run.from_row(_get_row(db, run_id))


def _log(db: sqlite3.Connection, run_id: str, message: str, at: float | None = None) -> None:
    db.execute("INSERT INTO logs (run_id, t, message) VALUES (?, ?, ?)", (run_id, at or time.time(), message))


# -------------------------------------------------------------------- store
class RunStore:
    """The SQLite run store under ``home`` (created on first use)."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = home_dir(home)
        self.path = self.home / DB_NAME
        self.checkpoints_dir = self.home / "checkpoints"
        self.locks_dir = self.home / "locks"
        self.logs_dir = self.home / "logs"
        try:
            for folder in (self.home, self.checkpoints_dir, self.locks_dir, self.logs_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.home}: cannot create the run folder ({exc})") from None
        try:
            self._ensure_schema()
        except StoreError:
            if not (self.path.is_file() and self.disk_problem() is not None):
                raise
            self.signature()  # a disk that is read-only or full: the runs are still listed, if they can be read

    def disk_problem(self) -> Problem | None:
        """Why nothing can be written to the store now (its disk is read-only, or full),
        as a message the page translates; None when it can be written."""
        try:
            disk = os.statvfs(self.home)
        except OSError:
            return None
        if disk.f_flag & os.ST_RDONLY or not os.access(self.home, os.W_OK) \
                or (self.path.exists() and not os.access(self.path, os.W_OK)):
            return Problem.of(DISK_READ_ONLY, path=str(self.home))
        free = disk.f_bavail * disk.f_frsize
        if free < LOW_SPACE_BYTES:
            return Problem.of(DISK_FULL, path=str(self.home), free=format_bytes(free))
        return None

    def _ensure_schema(self) -> None:
        """Create or upgrade the tables where the file is not set up yet (ensure_schema)."""
        try:
            ensure_schema(self.path, _SCHEMA, SCHEMA_VERSION, upgrade=self._add_columns)
        except sqlite3.DatabaseError as exc:
            raise StoreError(self.explain(exc)) from None

    @staticmethod
    def _add_columns(db: sqlite3.Connection) -> None:
        """An older store gets the columns added since (ALTER has no IF NOT EXISTS)."""
        have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}  # (cid, name, ...)
        for old, new in _RENAMED_COLUMNS.items():
            if old in have and new not in have:
                db.execute(f"ALTER TABLE runs RENAME COLUMN {old} TO {new}")
                have = (have - {old}) | {new}
        for column, declaration in _ADDED_COLUMNS.items():
            if column not in have:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} {declaration}")
        for trigger in _TRIGGERS:
            db.execute(trigger)

    def explain(self, exc: Exception) -> str:
        """What went wrong, in words that fit it: only a damaged file should be moved aside."""
        text = str(exc).lower()
        disk = self.disk_problem()  # a full disk shows itself to SQLite as "disk I/O error" at times
        if "readonly" in text or "read-only" in text or (disk is not None and disk.key == DISK_READ_ONLY):
            return f"{self.path}: the run store is read-only ({exc}); make the file and its folder writable"
        if "full" in text or disk is not None:
            return (f"{self.path}: the disk holding the run store is full ({format_bytes(self._free_bytes())} "
                    f"free; {exc}); free some space")
        if "no such table" in text or ("unable to open" in text and not self.path.is_file()):
            return f"{self.path}: the run store file was deleted or replaced while in use ({exc})"
        if "locked" in text or "busy" in text:
            return f"{self.path}: the run store is busy ({exc}); another process holds it"
        if "disk i/o" in text:
            return f"{self.path}: the disk failed while writing the run store ({exc})"
        return (f"{self.path}: the run store cannot be read ({exc}); move the file aside to start an empty "
                f"store -- checkpoints in {self.checkpoints_dir} are kept")

    def _free_bytes(self) -> int:
        try:
            disk = os.statvfs(self.home)
        except OSError:
            return 0
        return disk.f_bavail * disk.f_frsize

    def _open(self, how: str = "") -> sqlite3.Connection:
        """A connection: read-write, or as ``how`` says (one of _READ_ONLY_OPENS)."""
        target = f"file:{quote(str(self.path.absolute()))}?{how}" if how else self.path
        db = sqlite3.connect(target, timeout=30, isolation_level=None, uri=bool(how))
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        if not how:
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        return db

    def _open_to_read(self) -> sqlite3.Connection:
        """A connection to read with. On a disk that cannot be written (read-only, full)
        SQLite cannot open a WAL database as usual; it is read read-only instead."""
        if self.disk_problem() is None:
            return self._open()
        failure: sqlite3.Error | None = None
        for how in ("", *_READ_ONLY_OPENS):
            try:
                db = self._open(how)
            except sqlite3.Error as exc:
                failure = failure or exc
                continue
            try:
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
                return db
            except sqlite3.Error as exc:
                db.close()
                failure = failure or exc
        raise sqlite3.OperationalError(str(failure))

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            db = self._open() if write else self._open_to_read()
        except sqlite3.Error as exc:
            raise StoreError(self.explain(exc)) from None
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            raise StoreError(self.explain(exc)) from None
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (no deadlock on upgrade)."""
        with self._connect(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def checkpoint_path(self, run_id: str) -> Path:
        return self.checkpoints_dir / f"{check_run_id(run_id)}.pt"

    # ----------------------------------------------------------- submitting
    def add_run(self, model: str, config: dict[str, Any], config_hash: str, target: str, world_size: int = 1,
                reuse_succeeded: bool = True, submission: str | None = None, needs: str | None = None,
                memory_need: int | None = None) -> Submission:
        """Queue a run of ``config`` for ``target``, or return the run that already
        computed it. Callers plan first (``bigmodels.runs.queue.submit``).

        ``submission`` is the form's one-time key: submitting it again (a double
        click, a rerun) returns the run it created instead of queueing twice.
        ``reuse_succeeded``: a succeeded run with the same ``config_hash`` and
        ``world_size`` is returned (cached) instead of training again.
        ``needs``: a custom cluster resource the run's node must offer (e.g. a
        node started with ``--resources '{"a100": 1}'``); None: any node.
        ``memory_need``: the plan's bytes for one process on its device, what the
        dispatcher places the run by (the store keeps it; it does not plan).
        """
        now = time.time()
        with self._write() as db:
            if submission is not None:
                row = db.execute("SELECT * FROM runs WHERE submission = ?", (submission,)).fetchone()
                if row is not None:
                    return Submission(Run.from_row(row), cached=False)
            if reuse_succeeded:
                row = db.execute("SELECT * FROM runs WHERE config_hash = ? AND world_size = ? AND status = "
                                 "'succeeded' ORDER BY finished_at DESC LIMIT 1", (config_hash, world_size)).fetchone()
                if row is not None:
                    return Submission(Run.from_row(row), cached=True)
            run_id = new_run_id(model)
            while db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                run_id = new_run_id(model)
            db.execute(
                "INSERT INTO runs (id, submission, model, config, config_hash, world_size, target, status, "
                "created_at, queued_at, needs, memory_need) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (run_id, submission, model, json.dumps(config), config_hash, world_size,
                 target, now, now, needs, memory_need))
            _log(db, run_id, f"queued for {target}" + (f" on {world_size} processes" if world_size > 1 else "")
                 + (f" on a node offering {needs!r}" if needs else ""), now)
            return Submission(_get_run(db, run_id), cached=False)

    # -------------------------------------------------------------- reading
    def get(self, run_id: str) -> Run | None:
        check_run_id(run_id)
        with self._connect() as db:
            row = _find_row(db, run_id)
        return Run.from_row(row) if row else None

    def list_runs(self, statuses: list[str] | tuple[str, ...] | None = None,
                  models: list[str] | tuple[str, ...] | None = None, limit: int | None = None,
                  tag: str | None = None) -> list[Run]:
        """Newest first, optionally filtered by status, architecture and one tag."""
        query, args = "SELECT * FROM runs WHERE 1=1", []
        if tag is not None:
            query += " AND EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE value = ?)"
            args.append(tag)
        if statuses:
            query += f" AND status IN ({','.join('?' * len(statuses))})"
            args += list(statuses)
        if models:
            query += f" AND model IN ({','.join('?' * len(models))})"
            args += list(models)
        query += " ORDER BY created_at DESC"
        if limit:
            query += " LIMIT ?"
            args.append(int(limit))
        with self._connect() as db:
            return [Run.from_row(r) for r in db.execute(query, args).fetchall()]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        check_run_id(run_id)
        with self._connect() as db:
            rows = db.execute("SELECT step, epoch, loss, lr, t FROM steps WHERE run_id = ? ORDER BY step",
                              (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        check_run_id(run_id)
        with self._connect() as db:
            rows = db.execute("SELECT record FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def logs(self, run_id: str, limit: int = 200) -> list[tuple[float, str]]:
        """The latest ``limit`` log lines, oldest first."""
        check_run_id(run_id)
        with self._connect() as db:
            rows = db.execute("SELECT t, message FROM logs WHERE run_id = ? ORDER BY id DESC LIMIT ?",
                              (run_id, limit)).fetchall()
        return [(r["t"], r["message"]) for r in reversed(rows)]

    def system_metrics(self, run_id: str) -> list[dict[str, Any]]:
        """The worker's samples of CPU, memory (and GPU) while it trained ``run_id``."""
        check_run_id(run_id)
        with self._connect() as db:
            rows = db.execute("SELECT t, cpu_percent, memory_bytes, gpu_percent, gpu_memory_bytes FROM system "
                              "WHERE run_id = ? ORDER BY t", (run_id,)).fetchall()
        return [dict(r) for r in rows]

    def signature(self) -> tuple:
        """A cheap fingerprint of every run's state: it changes when a run is added,
        moves a step, changes status or is renamed (one aggregate query, for polling)."""
        with self._connect() as db:
            row = db.execute("SELECT COUNT(*), TOTAL(step), TOTAL(epoch), MAX(queued_at), TOTAL(finished_at), "
                             "MAX(heartbeat_at), MAX(info_at), GROUP_CONCAT(status) FROM runs").fetchone()
        return tuple(row)

    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    # -------------------------------------------------------------- control
    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run at once, or ask its session to stop a running one.
        Returns the status after the request."""
        check_run_id(run_id)
        now = time.time()
        with self._write() as db:
            status = _get_row(db, run_id)["status"]
            if status == "queued":
                db.execute("UPDATE runs SET status = 'cancelled', finished_at = ?, cancel_requested = 1 "
                           "WHERE id = ?", (now, run_id))
                _log(db, run_id, "cancelled while queued", now)
                return "cancelled"
            if status == "running":
                db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
                _log(db, run_id, "cancel requested", now)
                return "running"
            raise RunStateError(f"run {run_id} is {status}; only queued or running runs can be cancelled")

    def resume(self, run_id: str) -> Run:
        """Queue an interrupted, cancelled or failed run again; it continues from its
        last checkpoint (or starts over if it never finished an epoch)."""
        check_run_id(run_id)
        now = time.time()
        with self._write() as db:
            row = _get_row(db, run_id)
            if row["status"] not in RESUMABLE:
                raise RunStateError(f"run {run_id} is {row['status']}; only {', '.join(RESUMABLE)} runs can resume")
            has_checkpoint = checkpoint_written(row["checkpoint"])
            db.execute("UPDATE runs SET status = 'queued', queued_at = ?, resume = ?, cancel_requested = 0, "
                       "error = NULL, finished_at = NULL, loop_started_at = NULL, first_step_at = NULL, session = NULL, "
                       "dispatcher_pid = NULL "
                       "WHERE id = ?", (now, int(has_checkpoint), run_id))
            _log(db, run_id, "queued to resume from its last checkpoint" if has_checkpoint
                 else "queued again; no checkpoint was written yet, so it starts over", now)
            return _get_run(db, run_id)

    def set_info(self, run_id: str, name: str | None = None, tags: list[str] | str | None = None,
                 note: str | None = None) -> Run:
        """Name, tag and annotate a run (any status); RunInfoError past the limits."""
        check_run_id(run_id)
        name, tags, note = clean_info(name, tags, note)
        with self._write() as db:
            _get_row(db, run_id)
            db.execute("UPDATE runs SET name = ?, tags = ?, note = ?, info_at = ? WHERE id = ?",
                       (name, json.dumps(tags), note, time.time(), run_id))
            return _get_run(db, run_id)

    def tags(self) -> list[str]:
        """Every tag in use, sorted."""
        with self._connect() as db:
            rows = db.execute("SELECT DISTINCT value FROM runs, json_each(runs.tags) ORDER BY value").fetchall()
        return [r[0] for r in rows]

    def delete(self, run_id: str) -> list[Path]:
        """Remove a finished run, its metrics and its checkpoint; returns the files removed."""
        check_run_id(run_id)
        with self._write() as db:
            row = _get_row(db, run_id)
            if row["status"] in ACTIVE:
                raise RunStateError(f"run {run_id} is {row['status']}; cancel it before deleting it")
            for table in SYSTEM_TABLES:
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        removed = []
        leftovers = self.checkpoints_dir.glob(f".{self.checkpoint_path(run_id).name}.*.tmp")  # a kill mid-write
        for path in {self.checkpoint_path(run_id), *([Path(row["checkpoint"])] if row["checkpoint"] else []),
                     *leftovers}:
            if path.is_file() and path.resolve().is_relative_to(self.checkpoints_dir.resolve()):
                path.unlink()
                removed.append(path)
        return removed

    def remove_partial_checkpoints(self, older_than: float = 0.0) -> list[Path]:
        """Delete temporary checkpoint files a killed writer left (``.<id>.pt.*.tmp``)
        that are older than ``older_than`` seconds; returns them."""
        removed = []
        cutoff = time.time() - older_than
        for path in self.checkpoints_dir.glob(".*.tmp"):
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue  # gone already, or not ours to remove
        return removed

    # ------------------------------------------------------ dispatcher side
    def claim(self, run_id: str, session: str, pid: int) -> Run:
        """Move one queued run to running, trained by ``session`` and recorded by process
        ``pid`` (the dispatcher, or an in-process run's own)."""
        now = time.time()
        with self._write() as db:
            row = _get_row(db, run_id)
            if row["status"] != "queued":
                raise RunStateError(f"run {run_id} is {row['status']}; only a queued run can be started")
            db.execute("UPDATE runs SET status = 'running', session = ?, dispatcher_pid = ?, started_at = "
                       "COALESCE(started_at, ?), heartbeat_at = ?, attempts = attempts + 1 WHERE id = ?",
                       (session, pid, now, now, run_id))
            _log(db, run_id, f"started by {session} (pid {pid})", now)
            return _get_run(db, run_id)

    def set_provenance(self, run_id: str, device: str, device_name: str, data_source: str,
                       versions: dict[str, str], git_commit: str | None, checkpoint: str,
                       node: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET device = ?, device_name = ?, data_source = ?, versions = ?, git_commit = ?, "
                       "checkpoint = ?, node = COALESCE(?, node) WHERE id = ?",
                       (device, device_name, data_source, json.dumps(versions), git_commit, checkpoint, node, run_id))

    def restore_epochs(self, run_id: str, history: list[dict[str, Any]]) -> list[int]:
        """Record the epochs of ``history`` (a checkpoint's) that the store lacks: a
        kill between a checkpoint landing and its epoch being recorded must not leave
        the store an epoch behind its checkpoint. Returns the epochs added."""
        added = []
        with self._write() as db:
            have = {r[0] for r in db.execute("SELECT epoch FROM epochs WHERE run_id = ?", (run_id,)).fetchall()}
            for record in history:
                epoch = int(record.get("epoch", 0))
                if epoch < 1 or epoch in have:
                    continue
                clean = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in record.items()}
                db.execute("INSERT INTO epochs (run_id, epoch, record) VALUES (?, ?, ?)",
                           (run_id, epoch, json.dumps(clean)))
                added.append(epoch)
            if added:
                accuracies = [r[0] for r in db.execute("SELECT json_extract(record, '$.test_accuracy') FROM epochs "
                                                       "WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()]
                known = [a for a in accuracies if a is not None]
                db.execute("UPDATE runs SET epoch = MAX(epoch, ?), best_accuracy = ?, final_accuracy = ? WHERE id = ?",
                           (max(added), max(known) if known else None, accuracies[-1], run_id))
                _log(db, run_id, f"recorded epoch{'s' if len(added) > 1 else ''} "
                                 f"{', '.join(map(str, added))} from the checkpoint (the process was stopped between "
                                 f"writing the checkpoint and recording the epoch)")
        return added

    def record_start(self, run_id: str, step: int, epoch: int, total_steps: int, at: float | None = None) -> None:
        """Training (re)started at global ``step``: drop metrics a resume will redo."""
        with self._write() as db:
            db.execute("UPDATE runs SET loop_started_at = ? WHERE id = ?", (at or time.time(), run_id))
            db.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", (run_id, step))
            db.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, epoch))
            accuracies = [r[0] for r in db.execute("SELECT json_extract(record, '$.test_accuracy') FROM epochs "
                                                   "WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()]
            best = max(accuracies) if accuracies else None
            last = accuracies[-1] if accuracies else None
            db.execute("UPDATE runs SET step = ?, start_step = ?, epoch = ?, total_steps = ?, best_accuracy = ?, "
                       "final_accuracy = ? WHERE id = ?", (step, step, epoch, total_steps, best, last, run_id))

    def record_steps(self, run_id: str, rows: list[tuple[int, int, float, float, float]],
                     samples_per_second: float | None = None, first_step: bool = False) -> None:
        """Store (step, epoch, loss, lr, t) rows and move the run's progress forward."""
        if not rows:
            return
        last = rows[-1]
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO steps (run_id, step, epoch, loss, lr, t) VALUES (?, ?, ?, ?, ?, ?)",
                           [(run_id, s, e, _finite_or_none(loss), lr, t) for s, e, loss, lr, t in rows])
            db.execute("UPDATE runs SET step = ?, epoch = MAX(epoch, ?), lr = ?, heartbeat_at = ?, "
                       "samples_per_second = COALESCE(?, samples_per_second) WHERE id = ?",
                       (last[0], last[1] - 1, last[3], last[4], samples_per_second, run_id))
            if first_step:
                db.execute("UPDATE runs SET first_step_at = COALESCE(first_step_at, ?) WHERE id = ?",
                           (rows[0][4], run_id))

    def record_epoch(self, run_id: str, record: dict[str, Any]) -> None:
        clean = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in record.items()}
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO epochs (run_id, epoch, record) VALUES (?, ?, ?)",
                       (run_id, int(record["epoch"]), json.dumps(clean)))
            db.execute("UPDATE runs SET epoch = ?, best_accuracy = MAX(COALESCE(best_accuracy, 0), ?), "
                       "final_accuracy = ?, samples_per_second = ?, heartbeat_at = ? WHERE id = ?",
                       (record["epoch"], record["test_accuracy"], record["test_accuracy"],
                        record.get("samples_per_second"), time.time(), run_id))
            _log(db, run_id, f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, test loss "
                             f"{record['test_loss']:.4f}, test accuracy {record['test_accuracy']:.2%}, "
                             f"{record.get('samples_per_second', 0):,.0f} samples/s")

    def heartbeat(self, run_id: str, memory_bytes: int | None = None,
                  memory_kind: str | None = None, system: dict[str, float | int | None] | None = None) -> None:
        """The run's session is alive; ``system``: a sample of its CPU utilisation, memory
        and GPU use (keys of the ``system`` table), recorded for the running run."""
        now = time.time()
        with self._write() as db:
            running = db.execute("UPDATE runs SET heartbeat_at = ?, memory_bytes = ?, memory_kind = ? "
                                 "WHERE id = ? AND status = 'running'",
                                 (now, memory_bytes, memory_kind, run_id)).rowcount
            if running and system:
                db.execute("INSERT OR REPLACE INTO system (run_id, t, cpu_percent, memory_bytes, gpu_percent, "
                           "gpu_memory_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                           (run_id, now, *(_finite_or_none(system.get(k)) for k in ("cpu_percent",)),
                            system.get("memory_bytes"), _finite_or_none(system.get("gpu_percent")),
                            system.get("gpu_memory_bytes")))

    def cancel_requested(self, run_id: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row is None or row["cancel_requested"])  # a deleted run stops too

    def log(self, run_id: str, message: str) -> None:
        with self._write() as db:
            _log(db, run_id, message)

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a running run as succeeded, failed, cancelled or interrupted."""
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status!r}")
        now = time.time()
        message = {"succeeded": "finished", "failed": f"failed: {error}", "cancelled": "cancelled",
                   "interrupted": f"interrupted: {error}"}[status]
        with self._write() as db:
            db.execute("UPDATE runs SET status = ?, error = ?, finished_at = ?, resume = 0 "
                       "WHERE id = ? AND status = 'running'", (status, error, now, run_id))
            _log(db, run_id, message, now)

    def interrupt(self, run_ids: list[str], reason: str) -> list[str]:
        """Mark these runs interrupted if they are still 'running' (their session or dispatcher is gone);
        returns the ones that were."""
        now = time.time()
        done = []
        with self._write() as db:
            for run_id in run_ids:
                changed = db.execute("UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? "
                                     "WHERE id = ? AND status = 'running'", (reason, now, run_id)).rowcount
                if changed:
                    _log(db, run_id, f"interrupted: {reason}", now)
                    done.append(run_id)
        return done

    # ----------------------------------------------------------- predictions
    def register_prediction(self, sweep: str, payload: dict[str, Any]) -> Prediction:
        """Write a prediction, with its time and digest, before any run of it is queued."""
        now = time.time()
        payload = json.loads(json.dumps(payload))  # as it will read back
        with self._write() as db:
            prediction_id = "p-" + secrets.token_hex(6)
            db.execute("INSERT INTO predictions (id, sweep, registered_at, payload, digest) VALUES (?, ?, ?, ?, ?)",
                       (prediction_id, sweep, now, json.dumps(payload, sort_keys=True),
                        prediction_digest(payload, now)))
            return self._prediction(db, prediction_id)

    def attach_prediction_runs(self, prediction_id: str, run_ids: list[str]) -> Prediction:
        """Name the runs that measure a prediction (once; a run that started already freezes it now)."""
        with self._write() as db:
            self._prediction(db, prediction_id)
            try:
                marks = ",".join("?" * len(run_ids))
                db.execute(f"UPDATE predictions SET runs = ?, frozen_at = (SELECT MIN(started_at) FROM runs "
                           f"WHERE id IN ({marks})) WHERE id = ?", (json.dumps(list(run_ids)), *run_ids, prediction_id))
            except sqlite3.IntegrityError as exc:
                raise PredictionFrozen(f"prediction {prediction_id}: {exc}") from None
            return self._prediction(db, prediction_id)

    def amend_prediction(self, prediction_id: str, payload: dict[str, Any]) -> Prediction:
        """Replace a prediction's content (a new time and digest) while none of its runs has
        started; PredictionFrozen after (the database refuses it too)."""
        now = time.time()
        payload = json.loads(json.dumps(payload))
        with self._write() as db:
            self._prediction(db, prediction_id)
            try:
                db.execute("UPDATE predictions SET payload = ?, registered_at = ?, digest = ? WHERE id = ?",
                           (json.dumps(payload, sort_keys=True), now, prediction_digest(payload, now), prediction_id))
            except sqlite3.IntegrityError as exc:
                raise PredictionFrozen(f"prediction {prediction_id}: {exc}") from None
            return self._prediction(db, prediction_id)

    def predictions(self, sweep: str | None = None) -> list[Prediction]:
        """Registered predictions, oldest first (of one sweep, or all)."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM predictions" + (" WHERE sweep = ?" if sweep is not None else "")
                              + " ORDER BY registered_at", (() if sweep is None else (sweep,))).fetchall()
        return [Prediction.from_row(r) for r in rows]

    @staticmethod
    def _prediction(db: sqlite3.Connection, prediction_id: str) -> Prediction:
        row = db.execute("SELECT * FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
        if row is None:
            raise RunStateError(f"no prediction {prediction_id}")
        return Prediction.from_row(row)


# ------------------------------------------------------- for other pages
def run_history(run_id: str, home: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Per-epoch records of a run, with the training engine's keys (epoch,
    train_loss, test_loss, test_accuracy, samples_per_second, lr, elapsed,
    memory_bytes). Empty for an unknown run."""
    return RunStore(home).epochs(run_id)
