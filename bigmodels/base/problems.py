"""What is wrong with a request, in the user's language.

A ``Problem`` is a catalogue key and its values; a ``ConfigError`` carries every
problem found, so a form can list them all at once and the CLI can print each
on its own ``error:`` line. A value may itself be a catalogue ``Key`` (a
field's label), or another ``Problem`` (a phrase with values of its own),
translated with the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bigmodels.base.i18n import DEFAULT_LANGUAGE, translate


@dataclass(frozen=True)
class Key:
    """A catalogue key used as a value inside another text (e.g. a field's label)."""

    key: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, as a catalogue key and its values, so it
    reads in the user's language (``text("zh")``) and in logs (``str()``)."""

    key: str
    values: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, key: str, **values: Any) -> "Problem":
        return cls(key, tuple(values.items()))

    def text(self, lang: str = DEFAULT_LANGUAGE) -> str:
        values = {k: (translate(v.key, lang) if isinstance(v, Key) else v.text(lang) if isinstance(v, Problem) else v)
                  for k, v in self.values}
        return translate(self.key, lang, **values)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form (for files another process reads); ``from_json`` inverts it."""
        def encode(v):
            return {"$key": v.key} if isinstance(v, Key) else {"$problem": v.to_json()} if isinstance(v, Problem) else v
        return {"key": self.key, "values": {k: encode(v) for k, v in self.values}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Problem":
        def decode(v):
            if isinstance(v, dict) and "$key" in v:
                return Key(v["$key"])
            if isinstance(v, dict) and "$problem" in v:
                return cls.from_json(v["$problem"])
            return v
        return cls(str(data["key"]), tuple((k, decode(v)) for k, v in dict(data.get("values", {})).items()))

    def __str__(self) -> str:
        return self.text(DEFAULT_LANGUAGE)


class ConfigError(ValueError):
    """A request cannot run; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem | str]):
        self.problems = [p if isinstance(p, Problem) else Problem.of("train.problem.raw", text=p) for p in problems]
        super().__init__("; ".join(self.errors))

    @property
    def errors(self) -> list[str]:
        """The problems in English (logs, the CLI)."""
        return [str(p) for p in self.problems]

    def messages(self, lang: str = DEFAULT_LANGUAGE) -> list[str]:
        return [p.text(lang) for p in self.problems]


def show_value(value: Any, limit: int = 60) -> str:
    """A user's value as it appears inside a message: short, and safe for values
    that cannot be printed (ten thousand nested lists overflow ``repr``)."""
    try:
        text = repr(value)
    except RecursionError:
        return "(a value nested too deeply to show)"
    return text if len(text) <= limit else text[:limit - 3] + "..."
