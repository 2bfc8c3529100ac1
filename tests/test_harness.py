"""The shared harness (bigmodels/harness/): its catalogue matcher against what
Streamlit itself does to a text, and the rule that tests and benchmarks share it
instead of importing each other."""
from __future__ import annotations

import ast
import string
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.string_util import extract_leading_icon

from bigmodels.harness.catalogue import leading_icon, shown
from bigmodels.base.i18n import LANGUAGES, catalogue, translate

REPO = Path(__file__).resolve().parent.parent


def sample_values(text: str) -> dict[str, object]:
    """A value for each {field} of ``text`` that its format spec accepts."""
    values = {}
    for _, name, spec, _ in string.Formatter().parse(text):
        if name is None:
            continue
        for candidate in (f"<{name}>", 12345, 0.25):
            try:
                format(candidate, spec or "")
            except (TypeError, ValueError):
                continue
            values[name] = candidate
            break
    return values


def test_shown_matches_every_text_in_markdown_and_in_an_alert():
    """Every catalogue text, filled in: as st.markdown shows it (as written) and
    as st.warning & co. show it (Streamlit's own icon extraction applied)."""
    wrong = []
    for lang in LANGUAGES:
        for key, template in sorted(catalogue(lang).items()):
            values = sample_values(template)
            text = translate(key, lang, **values)
            icon, alert_body = extract_leading_icon(text)
            if leading_icon(text)[0].strip("_ -") != icon:  # not the emoji Streamlit would take
                wrong.append((lang, key, "icon", icon))
            for rendered in (text, alert_body):
                if not shown(key, lang, **values).match(rendered) or not shown(key, lang).match(rendered):
                    wrong.append((lang, key, rendered))
    assert not wrong, wrong


def test_sandbox_verdicts_as_an_alert_shows_them():
    """The flake behind this module: the disagreement verdict begins with an
    emoji that Streamlit moves into the alert's icon."""
    answers = "🧱 CNN (LeNet-5) says 7, 🔁 LSTM (row by row) says 7, 🔭 Transformer (ViT) says 9"
    _, body = extract_leading_icon(translate("sandbox.disagree", "en", answers=answers))
    assert not body.startswith("⚠")
    assert shown("sandbox.disagree").match(body)["answers"] == answers
    assert shown("sandbox.disagree", answers=answers).match(body)
    assert not shown("sandbox.disagree", answers=answers.replace("9", "7")).match(body)
    assert not shown("sandbox.agree").match(body)
    assert shown("sandbox.agree", digit=7).match(translate("sandbox.agree", "en", digit=7))
    assert not shown("sandbox.agree", digit=1).match(translate("sandbox.agree", "en", digit=7))


def test_shown_captures_fields_and_formats_given_ones():
    caption = translate("sandbox.random.caption", "en", index=12345, label=3)
    assert "#12,345" in caption
    match = shown("sandbox.random.caption").match(caption)
    assert (match["index"], match["label"]) == ("12,345", "3")
    assert shown("sandbox.random.caption", index=12345).match(caption)
    assert not shown("sandbox.random.caption", index=1234).match(caption)
    assert not shown("sandbox.random.caption").match(caption + " and more")  # anchored at the end


def test_the_harness_does_not_import_streamlit():
    """Server, browser and catalogue drive the app from outside; only the
    protocol client needs Streamlit's wire messages (streamlit.proto)."""
    code = ("import sys, bigmodels.harness, bigmodels.harness.server, bigmodels.harness.browser, "
            "bigmodels.harness.catalogue; sys.exit('streamlit' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_tests_and_benchmarks_share_the_harness_instead_of_importing_each_other():
    for path in sorted((REPO / "tests").glob("*.py")):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "benchmarks"}, path
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "tests"}, path
        assert "sys.path.insert" not in path.read_text(), f"{path}: run it as python -m benchmarks.{path.stem}"
