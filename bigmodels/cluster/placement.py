"""Where a queued run goes: the free session that fits it, or why it waits.

Pure logic over a snapshot of the sessions (no Ray, no store), so every rule
is tested directly: the device kind the plan chose, the custom resource a run
asks its node for, and -- on a GPU -- enough free memory for the plan's
estimate. Among the sessions that fit, the one with the most free memory wins
(ties: the first, which is the head node's), so small runs do not crowd the
big GPU out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bigmodels.base.formatting import format_bytes
from bigmodels.base.problems import Problem
from bigmodels.train.plan import MEMORY_SHARE


@dataclass(frozen=True)
class SessionView:
    key: str
    kind: str  # "cpu" | "cuda"
    free: bool  # warm and not training
    device_free_bytes: int | None = None  # a GPU's free memory (None on the CPU: the plan checked the host)
    device_total_bytes: int | None = None
    node_resources: dict[str, float] = field(default_factory=dict)


def device_phrase(kind: str, needs: str | None = None) -> Problem:
    """"a GPU" / "a CPU on a node offering 'a100'", in the reader's language."""
    kind = kind if kind in ("cpu", "cuda", "mps") else "cpu"
    return Problem.of(f"launcher.what.{kind}_on", needs=needs) if needs else Problem.of(f"launcher.what.{kind}")


def choose_session(sessions: list[SessionView], kind: str, need_bytes: int, needs: str | None = None
                   ) -> tuple[str | None, Problem | None]:
    """(key of the session to use, None) or (None, why the run waits)."""
    what = device_phrase(kind, needs)
    of_kind = [s for s in sessions if s.kind == kind and (not needs or s.node_resources.get(needs, 0) > 0)]
    if not of_kind:
        return None, Problem.of("launcher.wait.none", what=what)
    big_enough = [s for s in of_kind if s.device_total_bytes is None
                  or need_bytes <= s.device_total_bytes * MEMORY_SHARE]
    if not big_enough:
        return None, Problem.of("launcher.wait.too_small", what=what, need=format_bytes(need_bytes / MEMORY_SHARE),
                                largest=format_bytes(max(s.device_total_bytes for s in of_kind)))
    free = [s for s in big_enough if s.free]
    if not free:
        return None, Problem.of("launcher.wait.busy", what=what)
    fits = [s for s in free if s.device_free_bytes is None or need_bytes <= s.device_free_bytes * MEMORY_SHARE]
    if not fits:
        return None, Problem.of("launcher.wait.free", what=what, need=format_bytes(need_bytes / MEMORY_SHARE))
    best = max(fits, key=lambda s: s.device_free_bytes or 0)
    return best.key, None
