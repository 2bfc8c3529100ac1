"""The floors the README's layout table describes, checked on the source.

import-linter checks the contracts in ``.importlinter``: the floors, top to bottom (no
import runs up); no import cycle between the modules of a folder; only ``bigmodels/app/``
imports Streamlit; the run store imports no torch. What it has no contract for is
checked here: package imports sit at the top of a module (except the CLI's lazy ones),
and every folder is in the README's table, in the contract's order.
"""
import ast
import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path


from tests.conftest import REPO

PACKAGE = REPO / "bigmodels"
CONFIG = REPO / ".importlinter"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter's own command on the package under ``root`` (a fresh process: its
    graph is built from the files as they are)."""
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", str(root / ".importlinter"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root),
                                                                                        "PATH": "/usr/bin:/bin"})


def floors() -> list[list[str]]:
    """The layers contract's floors, top first, each a list of sibling folders."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    lines = [line.strip() for line in config["importlinter:contract:floors"]["layers"].splitlines() if line.strip()]
    return [[name.strip() for name in re.split(r"[|:]", line)] for line in lines]


def test_every_import_linter_contract_is_kept():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "BROKEN" not in done.stdout


def test_the_contracts_catch_an_upward_import_and_a_cycle(tmp_path):
    """The same contracts on a copy of the package with one upward import (the ground
    floor importing a page's glue) and one cycle inside a folder: both are reported."""
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "bigmodels", ignore=shutil.ignore_patterns("weights", "locales", "__pycache__",
                                                                              "shipped", "*.yaml", "*.json"))
    shutil.copy(CONFIG, copy / ".importlinter")
    formatting = copy / "bigmodels" / "base" / "formatting.py"
    formatting.write_text(formatting.read_text() + "\nfrom bigmodels.app import session  # noqa\n")
    queue = copy / "bigmodels" / "runs" / "store.py"
    queue.write_text(queue.read_text() + "\nfrom bigmodels.runs import queue  # noqa\n")
    done = lint_imports(copy)
    assert done.returncode != 0
    assert "bigmodels.base is not allowed to import bigmodels.app" in done.stdout
    assert "No import cycle between the modules of a folder BROKEN" in done.stdout


def test_every_folder_is_a_floor_and_in_the_readme_in_the_same_order():
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    named = [name for floor in floors() for name in floor]
    assert sorted(n for n in named if (PACKAGE / n).is_dir()) == folders
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    at = [readme.find(f"`bigmodels/{name}/`") for floor in floors() for name in floor if (PACKAGE / name).is_dir()]
    assert -1 not in at and at == sorted(at), "the README's layout table lists the floors top to bottom"


def test_every_module_is_named_in_its_floors_row_of_the_readme():
    rows = {line.split("|")[1]: line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `bigmodels/")}
    missing = []
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        (row,) = [line for line in rows.values() if f"`bigmodels/{folder.name}/`" in line]
        missing += [f"{folder.name}/{m.stem}" for m in sorted(folder.glob("*.py"))
                    if m.stem != "__init__" and f"`{m.stem}`" not in row]
    assert missing == []


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(name, node.lineno, id(node) in top) for name in names]
    return found


def test_package_imports_are_at_module_top_except_the_clis_lazy_ones():
    """A lazy import hides a dependency from a reader (and costs at a surprising time);
    the CLI's keep ``--help`` quick."""
    lazy_allowed = {PACKAGE / "cli.py"}
    offenders = [f"{path.relative_to(REPO)}:{line} imports {imported} inside a function"
                 for path in sorted(PACKAGE.rglob("*.py")) if path not in lazy_allowed
                 for imported, line, at_top in imports(path) if not at_top and imported.startswith("bigmodels")]
    assert offenders == []


def test_the_lazy_import_check_reads_real_import_statements(tmp_path):
    fake = tmp_path / "x.py"
    fake.write_text("import os\ndef f():\n    from bigmodels.app import session\n")
    assert [(n, top) for n, _, top in imports(fake)] == [("os", True), ("bigmodels.app", False)]
