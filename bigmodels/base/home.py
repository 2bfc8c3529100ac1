"""The data home: one folder that holds the run store, the service store, the gallery
and the embedded Ray head's files (``BIGMODELS_HOME``, default ``./runs``)."""
from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "BIGMODELS_HOME"
DEFAULT_HOME = Path("runs")


def home_dir(home: str | os.PathLike | None = None) -> Path:
    """The data home: the argument, else ``$BIGMODELS_HOME``, else ``./runs``."""
    chosen = home or os.environ.get(ENV_HOME) or DEFAULT_HOME
    return Path(chosen).expanduser()
