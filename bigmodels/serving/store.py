"""The service's own records: API keys (hashed), usage per key and model, and
which model sources are deployed with which settings.

SQLite in WAL mode under ``<home>/serving/`` (beside the run store, on the same
local disk), so the app, the CLI and the gateway replicas -- separate processes
-- share one truth. No torch, no Ray: it is read on every page rerun.

Keys: ``bmk_<id>_<secret>``. Only SHA-256 of the whole key is kept (the key is
32 random bytes, so a fast hash is enough: there is nothing to guess); the key
itself is returned once, by ``create_key``, and never stored, logged or shown
again. A presented key is found by its id and compared by hash in constant time
(``hmac.compare_digest``).
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bigmodels.base.home import home_dir
from bigmodels.runs.store import ensure_schema
from bigmodels.serving.errors import ServiceProblem
from bigmodels.serving.settings import (
    DEFAULT_BURST, DEFAULT_QUOTA_IMAGES, DEFAULT_RATE_PER_S, MAX_KEY_NAME, MAX_RATE_PER_S, DeploySettings,
)

KEY_PATTERN = re.compile(r"bmk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")

MAX_LOAD_RUNS = 20  # load generator results kept for the side-by-side table
SCHEMA_VERSION = 2  # PRAGMA user_version of a set-up file (ensure_schema); raise it when _SCHEMA changes
# keys.reserved_images: the images a key's quota has given out, taken before a request is answered
# (reserve_images) and given back when it fails; the usage table meters what was answered.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL, created_at REAL NOT NULL,
    revoked_at REAL, rate_per_s REAL NOT NULL, burst INTEGER NOT NULL, quota_images INTEGER NOT NULL,
    reserved_images INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS usage (
    key_id TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0,
    images INTEGER NOT NULL DEFAULT 0, compute_ms REAL NOT NULL DEFAULT 0, last_at REAL,
    PRIMARY KEY (key_id, model));
CREATE TABLE IF NOT EXISTS deployments (
    model_id TEXT PRIMARY KEY, source_id TEXT NOT NULL, architecture TEXT NOT NULL, origin TEXT NOT NULL,
    checkpoint TEXT NOT NULL, version TEXT NOT NULL, accuracy REAL, settings TEXT NOT NULL,
    deployed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS service (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ServiceStoreError(RuntimeError):
    """The service's store cannot be read or written; the message says where and why."""


class KeyRequestError(ServiceProblem, ValueError):
    """A key request that cannot be honoured (bad name, rate or quota)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: float
    revoked_at: float | None
    rate_per_s: float
    burst: int
    quota_images: int  # 0: no quota

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Usage:
    key_id: str
    model: str
    requests: int
    images: int
    compute_ms: float
    last_at: float | None


@dataclass(frozen=True)
class Deployment:
    model_id: str  # the id in the API's URLs
    source_id: str  # bigmodels.runs.sources id: shipped:cnn, run:<id>
    architecture: str
    origin: str
    checkpoint: str
    version: str  # the checkpoint's content hash (first 12 hex digits)
    accuracy: float | None
    settings: DeploySettings
    deployed_at: float

    @property
    def app_name(self) -> str:
        return app_name(self.model_id)


def app_name(model_id: str) -> str:
    """The Serve application that holds a model's deployment."""
    return f"bigmodels-model-{model_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def service_dir(home: str | os.PathLike | None = None) -> Path:
    return home_dir(home) / "serving"


class ServiceStore:
    def __init__(self, home: str | os.PathLike | None = None):
        self.folder = service_dir(home)
        self.path = self.folder / "service.sqlite"
        self._ledger: sqlite3.Connection | None = None  # reserve_images' kept connection
        self._ledger_lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            ensure_schema(self.path, _SCHEMA, SCHEMA_VERSION, upgrade=_upgrade)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise ServiceStoreError(f"{self.path}: the service store cannot be opened ({exc})") from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise ServiceStoreError(f"{self.path}: the service store cannot be opened ({exc})") from None
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        except sqlite3.DatabaseError as exc:
            raise ServiceStoreError(f"{self.path}: the service store cannot be read ({exc})") from None
        finally:
            db.close()

    # ------------------------------------------------------------ keys
    def create_key(self, name: str, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST,
                   quota_images: int = DEFAULT_QUOTA_IMAGES) -> tuple[ApiKey, str]:
        """A new key: its record, and the key itself -- the only time it exists in clear."""
        name = (name or "").strip()
        if not name or len(name) > MAX_KEY_NAME:
            raise KeyRequestError("name", limit=MAX_KEY_NAME)
        if not (0 < float(rate_per_s) <= MAX_RATE_PER_S):
            raise KeyRequestError("rate", limit=MAX_RATE_PER_S)
        if int(burst) < 1:
            raise KeyRequestError("burst")
        if int(quota_images) < 0:
            raise KeyRequestError("quota")
        key_id = secrets.token_hex(6)
        key = f"bmk_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, time.time(), None, float(rate_per_s), int(burst), int(quota_images))
        with self._connect() as db:
            db.execute("INSERT INTO keys (id, name, hash, created_at, revoked_at, rate_per_s, burst, quota_images) "
                       "VALUES (?, ?, ?, ?, NULL, ?, ?, ?)",
                       (key_id, name, hash_key(key), record.created_at, record.rate_per_s, record.burst,
                        record.quota_images))
        return record, key

    def revoke_key(self, key_id: str) -> bool:
        with self._connect() as db:
            done = db.execute("UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                              (time.time(), key_id)).rowcount
        return bool(done)

    def keys(self) -> list[ApiKey]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM keys ORDER BY created_at").fetchall()
        return [_key(row) for row in rows]

    def key_hash(self, key_id: str) -> tuple[str, ApiKey] | None:
        """One key's (stored hash, record), or None: a key the gateway has not read yet."""
        with self._ledger_lock:
            row = self._ledger_read("SELECT * FROM keys WHERE id = ?", (key_id,))
        return None if row is None else (row["hash"], _key(row))

    def key_hashes(self) -> dict[str, tuple[str, ApiKey]]:
        """id -> (stored hash, record): what the gateway caches to check keys without a query each."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM keys").fetchall()
        return {row["id"]: (row["hash"], _key(row)) for row in rows}

    # ------------------------------------------------------------ usage
    def add_usage(self, rows: list[tuple[str, str, int, int, float]]) -> None:
        """(key id, model, requests, images, compute ms) increments, in one transaction."""
        if not rows:
            return
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, model) DO UPDATE SET "
                "requests = requests + excluded.requests, images = images + excluded.images, "
                "compute_ms = compute_ms + excluded.compute_ms, last_at = excluded.last_at",
                [(k, m, r, i, c, now) for k, m, r, i, c in rows])
            db.execute("COMMIT")

    def usage(self) -> list[Usage]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM usage ORDER BY key_id, model").fetchall()
        return [Usage(r["key_id"], r["model"], r["requests"], r["images"], r["compute_ms"], r["last_at"])
                for r in rows]

    def reserve_images(self, key_id: str, images: int) -> bool:
        """Take ``images`` from the key's quota before they are answered: one UPDATE that
        checks and adds at once, so concurrent requests -- from any process -- can never
        together take more than the quota. False when they do not fit (or no such key).
        A key without a quota (0) always fits. It is on every request's path, so it goes
        through this store's one kept connection (opening one costs more than the write)."""
        return bool(self._ledger_write(
            "UPDATE keys SET reserved_images = reserved_images + :n WHERE id = :id "
            "AND (quota_images = 0 OR reserved_images + :n <= quota_images)", {"n": int(images), "id": key_id}))

    def refund_images(self, key_id: str, images: int) -> None:
        """Give back images reserved for a request that got no answer."""
        self._ledger_write("UPDATE keys SET reserved_images = MAX(0, reserved_images - :n) WHERE id = :id",
                           {"n": int(images), "id": key_id})

    def _ledger_write(self, sql: str, values: dict) -> int:
        with self._ledger_lock:
            return self._kept(lambda db: db.execute(sql, values).rowcount)

    def _ledger_read(self, sql: str, values: tuple):
        return self._kept(lambda db: db.execute(sql, values).fetchone())

    def _kept(self, work):
        """``work(db)`` on the kept connection (the caller holds ``_ledger_lock``)."""
        try:
            if self._ledger is None:
                self._ledger = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                self._ledger.row_factory = sqlite3.Row
                self._ledger.execute("PRAGMA busy_timeout=30000")
                self._ledger.execute("PRAGMA synchronous=NORMAL")
            return work(self._ledger)
        except sqlite3.Error as exc:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None  # the next call opens the file again (it may have been replaced)
            raise ServiceStoreError(f"{self.path}: the service store cannot be used ({exc})") from None

    def images_used(self) -> dict[str, int]:
        """Images metered so far per key (what quotas are checked against)."""
        with self._connect() as db:
            rows = db.execute("SELECT key_id, SUM(images) AS n FROM usage GROUP BY key_id").fetchall()
        return {r["key_id"]: int(r["n"] or 0) for r in rows}

    # ------------------------------------------------------------ deployments
    def record_deployment(self, deployment: Deployment) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (deployment.model_id, deployment.source_id, deployment.architecture, deployment.origin,
                        deployment.checkpoint, deployment.version, deployment.accuracy,
                        json.dumps(deployment.settings.to_dict()), deployment.deployed_at))

    def forget_deployment(self, model_id: str) -> bool:
        with self._connect() as db:
            return bool(db.execute("DELETE FROM deployments WHERE model_id = ?", (model_id,)).rowcount)

    def deployments(self) -> list[Deployment]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM deployments ORDER BY deployed_at").fetchall()
        return [Deployment(r["model_id"], r["source_id"], r["architecture"], r["origin"], r["checkpoint"],
                           r["version"], r["accuracy"], DeploySettings(**json.loads(r["settings"])),
                           r["deployed_at"]) for r in rows]

    # ------------------------------------------------------------ the service itself
    def set_value(self, name: str, value) -> None:
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO service VALUES (?, ?)", (name, json.dumps(value)))

    def add_load_run(self, run: dict) -> None:
        """Keep a load generator's result (its label and summary) with the service, so the
        runs compared side by side survive a reload and are every visitor's; the newest
        ``MAX_LOAD_RUNS`` are kept."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT value FROM service WHERE name = 'load_runs'").fetchone()
            runs = ([] if row is None else json.loads(row["value"]))[-(MAX_LOAD_RUNS - 1):] + [run]
            db.execute("INSERT OR REPLACE INTO service VALUES ('load_runs', ?)", (json.dumps(runs),))
            db.execute("COMMIT")

    def load_runs(self) -> list[dict]:
        """The kept load runs, oldest first; each run's status counts keyed by int status."""
        return [{**run, "statuses": {int(k): v for k, v in run.get("statuses", {}).items()}}
                for run in self.value("load_runs", [])]

    def clear_load_runs(self) -> None:
        self.set_value("load_runs", [])

    def value(self, name: str, default=None):
        with self._connect() as db:
            row = db.execute("SELECT value FROM service WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row["value"])


def _upgrade(db: sqlite3.Connection) -> None:
    """A first-schema file: keys get ``reserved_images``, set to what each key has used."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(keys)")}
    if "reserved_images" not in columns:
        db.execute("ALTER TABLE keys ADD COLUMN reserved_images INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE keys SET reserved_images = "
                   "(SELECT COALESCE(SUM(images), 0) FROM usage WHERE usage.key_id = keys.id)")


def _key(row) -> ApiKey:
    return ApiKey(row["id"], row["name"], row["created_at"], row["revoked_at"], row["rate_per_s"], row["burst"],
                  row["quota_images"])


def key_id_of(presented: str | None) -> str | None:
    """The id part of a key of the right shape, else None."""
    match = KEY_PATTERN.fullmatch((presented or "").strip())
    return match.group(1) if match else None


def check_key(presented: str | None, known: dict[str, tuple[str, ApiKey]]) -> tuple[str, ApiKey | None]:
    """("ok", key) / ("missing" | "invalid", None) / ("revoked", key) for a presented key.

    The comparison is by hash in constant time; a key of the wrong shape or an
    unknown id is "invalid" without touching any stored hash."""
    if not presented:
        return "missing", None
    match = KEY_PATTERN.fullmatch(presented.strip())
    if not match:
        return "invalid", None
    entry = known.get(match.group(1))
    if entry is None:
        return "invalid", None
    stored, record = entry
    if not hmac.compare_digest(hash_key(presented.strip()).encode(), stored.encode()):
        return "invalid", None
    return ("revoked", record) if record.revoked else ("ok", record)
