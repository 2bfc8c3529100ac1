"""Per-key rate limits (token buckets), kept in the gateway's memory. (Quotas are
reserved in the service store, atomically: ``ServiceStore.reserve_images``.)

Pure logic on a clock passed in, so the tests drive time themselves. One bucket
per key: ``rate_per_s`` tokens refill each second up to ``burst``; a request
takes one. An empty bucket answers how long until a token is back -- the
``Retry-After`` the client is told.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, rate_per_s: float, burst: int, now: float) -> float:
        """0 when the request may go; otherwise seconds until it could."""
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(burst), now)
            bucket.tokens = min(float(burst), bucket.tokens + max(0.0, now - bucket.at) * rate_per_s)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate_per_s


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; never 0 for a refused request."""
    return str(max(1, math.ceil(seconds)))

