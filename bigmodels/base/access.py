"""Who may launch, cancel and delete runs on a shared server.

With an operator token configured -- the ``BIGMODELS_OPERATOR_TOKEN``
environment variable, or ``operator_token`` in ``.streamlit/secrets.toml`` --
changing anything needs that token; everyone else can watch. Without one (a
laptop), everything is open and the page says so.

The token is compared in constant time (``hmac.compare_digest``) and never
logged, shown or put into an error message. A secrets file that cannot be read
locks the launcher rather than opening it: someone meant to set a token.
"""
from __future__ import annotations

import hmac
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

ENV_TOKEN = "BIGMODELS_OPERATOR_TOKEN"
SECRETS_KEY = "operator_token"


def default_secrets_files() -> list[Path]:
    """Where Streamlit reads secrets from: the user's, then the project's."""
    return [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml"]


@dataclass(frozen=True)
class AccessPolicy:
    """``token`` is None when none is configured; ``problem`` explains a secrets file
    that could not be read (then nobody may change anything)."""

    token: str | None = field(default=None, repr=False)  # repr=False: never printed by accident
    source: str | None = None  # "environment" or the secrets file's path
    problem: str | None = None

    @property
    def open(self) -> bool:
        return self.token is None and self.problem is None

    def allows(self, given: str | None) -> bool:
        """May the holder of ``given`` launch, cancel and delete?"""
        if self.problem is not None:
            return False
        if self.token is None:
            return True
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))


def load_policy(environ: Mapping[str, str] | None = None, secrets_files: list[Path] | None = None) -> AccessPolicy:
    """The policy in force: the environment variable wins over the secrets files,
    and a later secrets file (the project's) over an earlier one (the user's)."""
    environ = os.environ if environ is None else environ
    token = environ.get(ENV_TOKEN, "").strip()
    if token:
        return AccessPolicy(token, "environment")
    found: AccessPolicy = AccessPolicy()
    for path in (default_secrets_files() if secrets_files is None else secrets_files):
        if not path.is_file():
            continue
        try:
            secrets = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            # the message names the file and the parse error, never the file's content
            return AccessPolicy(None, str(path), f"{path}: cannot be read ({type(exc).__name__}); "
                                                 f"launching is locked until it is fixed")
        value = secrets.get(SECRETS_KEY)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            return AccessPolicy(None, str(path), f"{path}: {SECRETS_KEY} must be a non-empty string; "
                                                 f"launching is locked until it is fixed")
        found = AccessPolicy(value.strip(), str(path))
    return found
