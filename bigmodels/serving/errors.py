"""The one shape of a refusal in the service's control side: a ``reason`` (a
catalogue key's last part, ``service.problem.<reason>`` or
``service.keys.error.<reason>``) and the ``values`` that fill its message, so
the page says it in the user's language; ``str()`` is for logs and tests."""
from __future__ import annotations


class ServiceProblem(Exception):
    def __init__(self, reason: str, **values):
        super().__init__(f"{reason}: {values}" if values else reason)
        self.reason, self.values = reason, values
