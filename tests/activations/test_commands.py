"""Ctrl-C in a command: exit status 130 and one line; only a collation (the one command with a
checkpoint, --resume) is told how to go on."""

from __future__ import annotations

import argparse

from activations.commands import RESUME_HINT, run_command


def _interrupted(_: argparse.Namespace) -> int:
    raise KeyboardInterrupt


def test_a_collation_interrupted_is_told_it_resumes(capsys):
    args = argparse.Namespace(func=_interrupted, register=[], resume=False)
    assert run_command(args) == 130
    assert capsys.readouterr().out == f"neurons: interrupted{RESUME_HINT}\n"


def test_a_server_interrupted_says_nothing_of_a_checkpoint(capsys):
    args = argparse.Namespace(func=_interrupted, register=[])
    assert run_command(args) == 130
    assert capsys.readouterr().out == "neurons: interrupted\n"
