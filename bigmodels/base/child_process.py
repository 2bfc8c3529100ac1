"""How this package starts Python children of itself (the dispatcher, the Ray head, measurement runs).

One place decides the child's environment, so every child can import this
package whatever its working directory, every child waits politely, and no
child gets what it does not need (the operator token, see ``WITHHELD``).
"""
from __future__ import annotations

import os
from pathlib import Path

from bigmodels.base.access import ENV_TOKEN

#: The folder that holds the ``bigmodels`` package (the repository root in a checkout).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


#: What this process has and no child needs. The operator token gates the app's pages only; in
#: a child (the dispatcher, the Ray head and all Ray starts from it: GCS, raylet, device
#: sessions, Serve's replicas) it would be readable in /proc/<pid>/environ and passed further on.
WITHHELD = (ENV_TOKEN,)


def child_env(**extra: str) -> dict[str, str]:
    """This environment less ``WITHHELD``, with this package importable whatever the
    child's cwd, and OpenMP told to sleep rather than spin while it waits: on a machine
    shared with other busy processes, spinning threads made a CPU training step 30x
    slower (an LSTM step took 17 s instead of 0.5 s here). An operator's own OMP
    setting wins; ``extra`` wins over both."""
    paths = [str(PACKAGE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    inherited = {k: v for k, v in os.environ.items() if k not in WITHHELD}
    return {"OMP_WAIT_POLICY": "PASSIVE", **inherited, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **extra}
