"""A bounded load generator for the service: loopback only.

Two modes. With ``rate`` None (the default) it finds the service's capacity:
a closed loop that keeps ``concurrency`` requests in flight, each sent as soon
as one is answered, so requests/s is what the service sustains. With a
``rate`` it offers that many requests per second (open loop: a request is
started on schedule whether or not earlier ones have answered, up to
``concurrency`` in flight -- past that the schedule waits, and the report says
how many starts were late). Either way it runs ``duration_s`` seconds -- no new
request starts after that -- then waits for what is in flight (each request has
a timeout), and stops by itself. Every bound comes from
``bigmodels.serving.settings`` and is checked; the target must be a loopback
address, so a demo can never be pointed at someone else's server.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from bigmodels.serving.errors import ServiceProblem
from bigmodels.serving.metrics import percentile
from bigmodels.serving.settings import LOAD_BATCH, LOAD_CONCURRENCY, LOAD_DURATION_S, LOAD_RATE, REQUEST_TIMEOUT_S
from bigmodels.serving.outside_loop import call_outside_loop


class LoadError(ServiceProblem, ValueError):
    """A load plan out of its bounds, or aimed anywhere but loopback."""


@dataclass(frozen=True)
class LoadPlan:
    url: str
    key: str
    body: bytes
    content_type: str = "application/json"
    rate: float | None = None  # None: a closed loop at ``concurrency`` (the capacity); else requests/s offered
    duration_s: float = LOAD_DURATION_S.default
    concurrency: int = int(LOAD_CONCURRENCY.default)
    images_per_request: int = 1
    timeout_s: float = REQUEST_TIMEOUT_S + 5

    def check(self) -> None:
        for name, bound in (("rate", LOAD_RATE), ("duration_s", LOAD_DURATION_S), ("concurrency", LOAD_CONCURRENCY),
                            ("images_per_request", LOAD_BATCH)):
            value = getattr(self, name)
            if name == "rate" and value is None:
                continue  # the closed loop
            if not bound.check(value):
                raise LoadError("out_of_bounds", name=name, value=value, low=bound.low, high=bound.high)
        require_loopback(self.url)


def require_loopback(url: str) -> None:
    """Refuse any target but this machine's loopback (127.0.0.0/8, ::1)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError("bad_url", url=url)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80,
                                                                proto=socket.IPPROTO_TCP)}
    except socket.gaierror:
        raise LoadError("bad_url", url=url) from None
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise LoadError("not_loopback", host=parts.hostname)


@dataclass
class LoadReport:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status (0: no answer) -> count
    latencies_ms: list[float] = field(default_factory=list)  # of the 200s
    late_starts: int = 0
    seconds: float = 0.0
    images_per_request: int = 1

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def images_per_s(self) -> float:
        return self.requests_per_s * self.images_per_request

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    def summary(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "statuses": dict(sorted(self.statuses.items())),
                "seconds": self.seconds, "requests_per_s": self.requests_per_s, "images_per_s": self.images_per_s,
                "p50_ms": self.latency(50), "p95_ms": self.latency(95), "p99_ms": self.latency(99),
                "late_starts": self.late_starts}


async def _run(plan: LoadPlan, stop: threading.Event | None) -> LoadReport:
    report = LoadReport(images_per_request=plan.images_per_request)
    gate = asyncio.Semaphore(plan.concurrency)
    headers = {"Authorization": f"Bearer {plan.key}", "Content-Type": plan.content_type}
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    connector = aiohttp.TCPConnector(limit=plan.concurrency)

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        try:
            async with session.post(plan.url, data=plan.body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status = 0
        finally:
            gate.release()
        report.statuses[status] = report.statuses.get(status, 0) + 1
        if status == 200:
            report.latencies_ms.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = []
        begin = time.perf_counter()
        scheduled = plan.rate is not None
        total = int(plan.rate * plan.duration_s) if scheduled else None
        while total is None or report.sent < total:
            if (stop is not None and stop.is_set()) or time.perf_counter() - begin >= plan.duration_s:
                break  # the duration bounds the run, however far behind the schedule a slow service left it
            if scheduled:
                delay = begin + report.sent / plan.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if gate.locked():
                    report.late_starts += 1
            await gate.acquire()  # closed loop: here it waits for an answer
            if time.perf_counter() - begin >= plan.duration_s:
                gate.release()
                break
            tasks.append(asyncio.create_task(one(session)))
            report.sent += 1
        await asyncio.gather(*tasks)
        report.seconds = time.perf_counter() - begin
    return report


def run_load(plan: LoadPlan, stop: threading.Event | None = None) -> LoadReport:
    """Run ``plan`` to the end (or until ``stop`` is set) in this thread's own event loop."""
    plan.check()
    return call_outside_loop(lambda: asyncio.run(_run(plan, stop)))
