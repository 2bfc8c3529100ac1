"""The service's own metrics: what the gateway saw, request by request.

The gateway records every request it answers (when, which model, status,
end-to-end latency in the gateway, images, and the size of the batch the
replica ran it in); ``summarise`` turns a window of those into what the
service page draws. Pure Python: tested without Ray.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass

from bigmodels.serving.settings import METRICS_MAX_RECORDS, METRICS_WINDOW_S


@dataclass(frozen=True)
class Record:
    at: float  # wall clock, seconds
    model: str  # "" when the request never reached a model (bad key, bad body)
    status: int
    latency_ms: float
    images: int = 0
    batch_size: int = 0  # the replica's batch this request rode in (0: not run)
    replica: str = ""


class RequestLog:
    """The last ``METRICS_WINDOW_S`` seconds of records (at most ``METRICS_MAX_RECORDS``)."""

    def __init__(self, window_s: float = METRICS_WINDOW_S, max_records: int = METRICS_MAX_RECORDS):
        self.window_s = window_s
        self._records: collections.deque[Record] = collections.deque(maxlen=max_records)
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        with self._lock:
            self._records.append(record)
            while self._records and self._records[0].at < record.at - self.window_s:
                self._records.popleft()

    def since(self, at: float) -> list[dict]:
        with self._lock:
            return [asdict(r) for r in self._records if r.at >= at]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100.0
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


@dataclass(frozen=True)
class Summary:
    seconds: list[float]  # the start of each 1 s bucket, relative to the window's end (negative)
    requests_per_s: list[float]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    p99_ms: list[float | None]
    batch_sizes: dict[int, int]  # batch size -> requests that rode in one of that size
    errors: dict[int, int]  # status -> count, for every status other than 200
    total: int
    ok: int
    overall: dict  # p50/p95/p99 and requests/s over the whole window


def summarise(records: list[dict], now: float, window_s: float = 60.0, model: str | None = None) -> Summary:
    """Per-second series and totals over the last ``window_s`` seconds."""
    chosen = [r for r in records if r["at"] >= now - window_s and (model is None or r["model"] == model)]
    buckets = int(window_s)
    by_second: list[list[float]] = [[] for _ in range(buckets)]
    batch_sizes: collections.Counter = collections.Counter()
    errors: collections.Counter = collections.Counter()
    for r in chosen:
        index = min(buckets - 1, int(r["at"] - (now - window_s)))
        by_second[index].append(r["latency_ms"])
        if r["status"] == 200 and r["batch_size"]:
            batch_sizes[int(r["batch_size"])] += 1
        if r["status"] != 200:
            errors[int(r["status"])] += 1
    ok = [r["latency_ms"] for r in chosen if r["status"] == 200]
    span = min(window_s, max(1e-9, now - min((r["at"] for r in chosen), default=now)))
    return Summary(
        seconds=[float(i - buckets) for i in range(buckets)],
        requests_per_s=[float(len(b)) for b in by_second],
        p50_ms=[percentile(b, 50) for b in by_second],
        p95_ms=[percentile(b, 95) for b in by_second],
        p99_ms=[percentile(b, 99) for b in by_second],
        batch_sizes=dict(sorted(batch_sizes.items())), errors=dict(sorted(errors.items())),
        total=len(chosen), ok=len(ok),
        overall={"p50_ms": percentile(ok, 50), "p95_ms": percentile(ok, 95), "p99_ms": percentile(ok, 99),
                 "requests_per_s": len(chosen) / span if chosen else 0.0})
