"""A newcomer's first commands: ``python -m bigmodels --help`` and every subcommand's
``--help`` print their usage and exit 0 (``train --help`` once died formatting a ``%``)."""
import argparse
import subprocess
import sys

import pytest

from bigmodels.cli import build_parser, main
from tests.conftest import REPO


def subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def test_every_subcommand_is_covered():
    assert {"train", "eval", "bench", "data", "dispatcher", "sweep", "serve"} <= set(subcommands())


@pytest.mark.parametrize("command", subcommands())
def test_each_subcommands_help_prints_and_exits_0(command, capsys):
    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and f" {command} " in out.splitlines()[0] + " "


def test_the_module_entry_point_prints_its_help():
    done = subprocess.run([sys.executable, "-m", "bigmodels", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage:") and "train" in done.stdout, done.stderr
