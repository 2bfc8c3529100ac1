"""The layering the README's layout table describes, checked on the source.

Only ``bigmodels/app/`` (and ``app.py``, ``pages/``) import Streamlit; the run
store imports no torch; no import cycle inside ``bigmodels``; package imports
sit at the top of a module, except the CLI's lazy ones.
"""
import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "bigmodels"
# The websocket client speaks Streamlit's protocol, so it needs its message classes (streamlit.proto);
# it is harness code for tests and benchmarks, never imported by the app.
PROTOCOL_CLIENT = PACKAGE / "harness" / "streamlit_client.py"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        at_top = id(node) in top
        if top_level_only and not at_top:
            continue
        found += [(name, node.lineno, at_top) for name in names]
    return found


def test_only_the_app_layer_imports_streamlit():
    allowed = [PACKAGE / "app"]
    offenders = []
    for name, path in modules().items():
        if any(path.is_relative_to(a) for a in allowed):
            continue
        for imported, line, _ in imports(path):
            if imported == "streamlit" or imported.startswith("streamlit."):
                if path == PROTOCOL_CLIENT and imported.startswith("streamlit.proto"):
                    continue
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {imported}")
    assert offenders == []


def test_the_run_store_imports_no_torch_and_nothing_of_training_or_the_ui():
    for imported, line, _ in imports(PACKAGE / "runs" / "store.py"):
        assert not imported.startswith(("torch", "streamlit", "bigmodels")), f"runs/store.py:{line} imports {imported}"


def test_the_boundary_test_would_catch_an_offender(tmp_path, monkeypatch):
    """The checks above read real import statements (a seeded offender is found)."""
    fake = tmp_path / "x.py"
    fake.write_text("def f():\n    import streamlit as st\n")
    assert [(n, top) for n, _, top in imports(fake)] == [("streamlit", False)]


def package_graph() -> dict[str, set[str]]:
    """Module -> the bigmodels modules it imports at module level (what runs on import)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported, _, _ in imports(path, top_level_only=True):
            while imported and imported not in known:  # "bigmodels.x.Name" -> "bigmodels.x"
                imported = imported.rpartition(".")[0]
            if imported and imported != name and imported != "bigmodels":
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None
    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_the_package():
    assert find_cycle(package_graph()) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_package_imports_are_at_module_top_except_the_clis_lazy_ones():
    lazy_allowed = {PACKAGE / "cli.py"}
    offenders = []
    for name, path in modules().items():
        if path in lazy_allowed:
            continue
        for imported, line, at_top in imports(path):
            if not at_top and imported.startswith("bigmodels"):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {imported} inside a function")
    assert offenders == []


@pytest.mark.parametrize("folder", ["app", "analysis", "data", "figures", "models", "runs", "train", "content", "serving",
                                    "harness"])
def test_every_layer_is_in_the_readme_layout_table(folder):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"`bigmodels/{folder}/`" in readme
