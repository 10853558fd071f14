"""`python -m rlsys.eval`: its commands reach each module's own flags and run."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from rlsys.eval import compare
from rlsys.eval.__main__ import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _flags(parser: argparse.ArgumentParser) -> list[tuple]:
    return [(a.dest, tuple(a.option_strings), a.nargs, a.default, a.type) for a in parser._actions]


def test_help_lists_each_command_with_its_summary() -> None:
    out = subprocess.run([sys.executable, "-m", "rlsys.eval", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for name, module in COMMANDS.items():
        assert f"{name} {module.__doc__.splitlines()[0]}" in text


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_takes_its_modules_flags(name: str) -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    alone = argparse.ArgumentParser()
    COMMANDS[name].add_arguments(alone)
    assert _flags(sub) == _flags(alone)


def test_compare_prints_the_same_table_as_the_module(tmp_path, capsys) -> None:
    for root in ("a", "b"):
        stage = tmp_path / root / "stages" / "sft" / "k1"
        stage.mkdir(parents=True)
        (stage / "summary.json").write_text('{"eval": {"math_acc": 0.5}}')
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    via_command = capsys.readouterr().out
    assert compare.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == via_command
    assert via_command.splitlines()[2] == "| stages/sft/k1 | - | - | 1 | 0 | 0 | - |"


@pytest.mark.parametrize(("argv", "message"), [
    (["wide", "m=x", "--samples", "2"], "--samples must be >= 1"),
    (["judge-votes", "m=x", "--samples", "1"], "a vote needs"),
    (["compare", "/nonexistent/a", "/nonexistent/b"], "no build under one cache key"),
])
def test_flags_reach_each_commands_checks(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(argv)
