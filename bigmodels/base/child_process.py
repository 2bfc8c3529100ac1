"""How this package starts Python children of itself (the dispatcher, the Ray head, measurement runs).

One place decides the child's environment, so every child can import this
package whatever its working directory, and every child waits politely.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The folder that holds the ``bigmodels`` package (the repository root in a checkout).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """This environment, with this package importable whatever the child's cwd, and
    OpenMP told to sleep rather than spin while it waits: on a machine shared with
    other busy processes, spinning threads made a CPU training step 30x slower
    (an LSTM step took 17 s instead of 0.5 s here). An operator's own OMP setting
    wins; ``extra`` wins over both."""
    paths = [str(PACKAGE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **extra}
