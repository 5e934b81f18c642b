"""The command table of ``dbmigrate``: every command is found in the module the table names."""

from __future__ import annotations

import argparse

import pytest

from dbmigrate.cli.main import COMMAND_MODULES, build_parser, main


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(actions[0].choices)


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_each_command_is_registered_by_the_module_the_table_names(command: str) -> None:
    assert command in _commands(build_parser([command]))


def test_help_lists_every_command() -> None:
    assert _commands(build_parser([])) == set(COMMAND_MODULES)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
