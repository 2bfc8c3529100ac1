"""From the article to working code: what the source article's printed code
gets wrong, shown next to where bigmodels does it right.

Each fix names the mistake's pattern (a minimal snippet, not a quote), a live
check that runs that pattern against the installed torch and shows what
happens, and the bigmodels code that replaces it. File names, line numbers and
snippets are read from the source with ``inspect`` at run time, so they stay
true when the code moves. Prose (English and Chinese) lives in the string
catalogues under ``comparison.fix.<id>.*``.
"""
from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from bigmodels.models import nets as models
from bigmodels.models.nets import LeNet5, RowLSTM, VisionTransformer
from bigmodels.models.registry import create_model
from bigmodels.base.problems import Problem

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class CodeLocation:
    path: str  # relative to the repository root
    first_line: int
    last_line: int
    snippet: str

    @property
    def reference(self) -> str:
        return f"{self.path}:{self.first_line}-{self.last_line}"

    @property
    def dedented(self) -> str:
        """The snippet without the indentation it has inside its class, for display."""
        return textwrap.dedent(self.snippet)


@dataclass(frozen=True)
class Outcome:
    """What a live check saw, as catalogue keys and values (``comparison.check.*``),
    so it reads in the user's language; ``str()`` of each part is the English."""

    article: Problem  # what running the article's pattern does
    bigmodels: Problem  # what the bigmodels code does instead
    article_failed: bool  # True: an exception (the expected failure); False: it runs, but wrongly


@dataclass(frozen=True)
class ArticleFix:
    id: str
    article_code: str  # the mistake's pattern, minimal and runnable
    target: object  # the module, class or function where bigmodels does it right
    marker: str  # a line of the target's source the snippet is centred on
    check: Callable[[], Outcome]
    before: int = 2  # lines of context above and below the marker
    after: int = 4


def locate(target: object, marker: str, before: int = 2, after: int = 4) -> CodeLocation:
    """File, line range and text of the lines around ``marker`` in ``target``'s source."""
    lines, start = inspect.getsourcelines(target)
    start = max(start, 1)  # a module's source starts at line 0
    hits = [i for i, line in enumerate(lines) if marker in line]
    if not hits:
        raise LookupError(f"{marker!r} not found in the source of {getattr(target, '__qualname__', target)}")
    lo, hi = max(0, hits[0] - before), min(len(lines), hits[0] + after + 1)
    while hi > hits[0] + 1 and not lines[hi - 1].strip():  # no trailing blank lines
        hi -= 1
    path = Path(inspect.getsourcefile(target)).resolve()
    try:
        shown = str(path.relative_to(REPO_ROOT))
    except ValueError:
        shown = str(path)
    return CodeLocation(shown, start + lo, start + hi - 1, "".join(lines[lo:hi]).rstrip("\n"))


# ---------------------------------------------------------------- live checks
def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


def _raised(exc: BaseException) -> Problem:
    """The exception the article's pattern raised, shown as Python prints it."""
    return Problem.of("comparison.check.raised", error=_error(exc))


def _check(key: str, **values) -> Problem:
    return Problem.of(f"comparison.check.{key}", **values)


ARTICLE_CNN = """\
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
"""


def _check_imports() -> Outcome:
    try:
        exec(compile(ARTICLE_CNN, "<article>", "exec"), {})  # a namespace with nothing imported
        article, failed = _check("ran"), False
    except NameError as exc:
        article, failed = _raised(exc), True
    model = create_model("cnn")
    return Outcome(article, _check("imports_ours", parameters=f"{sum(p.numel() for p in model.parameters()):,}"),
                   failed)


def _check_lstm_input() -> Outcome:
    image = torch.zeros(1, 1, 28, 28)
    article_lstm = nn.LSTM(input_size=1, hidden_size=8, batch_first=True)
    sequence = image.view(1, -1, 1)  # every pixel its own time step
    out, _ = article_lstm(sequence)
    steps = create_model("lstm").rows(image)
    return Outcome(_check("lstm_article", shape=tuple(sequence.shape), steps=out.shape[1]),
                   _check("lstm_ours", shape=tuple(steps.shape), steps=steps.shape[1], features=steps.shape[2]),
                   False)


def _check_positional_encoding() -> Outcome:
    try:
        nn.PositionalEncoding(64)  # type: ignore[attr-defined]
        article, failed = _check("ran"), False
    except AttributeError as exc:
        article, failed = _raised(exc), True
    model = create_model("transformer")
    return Outcome(article, _check("positional_ours", shape=tuple(model.pos_embed.shape)), failed)


def _check_feedforward() -> Outcome:
    d_model, nhead, num_layers = 64, 4, 4
    layer = nn.TransformerEncoderLayer(d_model, nhead, num_layers)  # the third argument is dim_feedforward
    model = create_model("transformer")
    return Outcome(_check("feedforward_article", width=layer.linear1.out_features),
                   _check("feedforward_ours", width=model.encoder.layers[0].linear1.out_features,
                          layers=len(model.encoder.layers)), False)


def _check_flatten() -> Outcome:
    article_lenet = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120),
    )
    try:
        article_lenet(torch.zeros(1, 1, 28, 28))
        article, failed = _check("ran"), False
    except RuntimeError as exc:
        article, failed = _raised(exc), True
    model = create_model("cnn")
    features = model.features(torch.zeros(1, 1, 28, 28))
    return Outcome(article, _check("flatten_ours", shape=tuple(features.shape[1:]),
                                   inputs=model.classifier[1].in_features), failed)


FIXES: tuple[ArticleFix, ...] = (
    ArticleFix("imports", ARTICLE_CNN, models, "from dataclasses import dataclass", _check_imports,
               before=0, after=3),
    ArticleFix(
        "lstm_input",
        "self.lstm = nn.LSTM(input_size=1, hidden_size=128, num_layers=2)\n"
        "out, _ = self.lstm(x.view(batch, -1, 1))  # 784 steps of one pixel",
        RowLSTM, "input_size=IMAGE_SIZE", _check_lstm_input, before=3, after=9),
    ArticleFix("positional_encoding", "self.pos_encoder = nn.PositionalEncoding(d_model)",
               VisionTransformer, "self.pos_embed = nn.Parameter", _check_positional_encoding, before=3, after=1),
    ArticleFix("feedforward", "layer = nn.TransformerEncoderLayer(d_model, nhead, num_layers)",
               VisionTransformer, "dim_feedforward=int(c.dim * c.mlp_ratio)", _check_feedforward, before=3, after=5),
    ArticleFix(
        "flatten",
        "self.conv1 = nn.Conv2d(1, 6, 5)        # no padding: 28 -> 24\n"
        "self.fc1 = nn.Linear(16 * 5 * 5, 120)  # 5x5 only if the input is 32x32",
        LeNet5, "pad = config.kernel_size // 2 if i == 0 else 0", _check_flatten, before=4, after=6),
)


def fix_locations() -> dict[str, CodeLocation]:
    return {fix.id: locate(fix.target, fix.marker, fix.before, fix.after) for fix in FIXES}

