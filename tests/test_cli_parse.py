"""The pit command line: building only the parser of the command being run,
or none for a plain `pit replay`, parses exactly as the whole parser does."""

from __future__ import annotations

import contextlib
import io

import pytest

from pit.commands import _command_named, _plain_replay, build_parser


def parsed(parser, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = vars(parser.parse_args(argv))
        except SystemExit as e:
            result = ("exit", e.code)
    return result, out.getvalue(), err.getvalue()


def command_lines():
    full = build_parser()
    commands = next(a for a in full._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sub in commands.choices.items():
        yield [name, "--help"]
        yield [name]
        yield [name, "x", "y", "z"]
        yield ["--pit", "somewhere", name, "x"]
        yield [f"--pit=somewhere", name, "--pit", "there", "x"]
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for verb in action.choices:
                    yield [name, verb, "--help"]
                    yield [name, verb]
    yield from ([], ["--help"], ["bogus"], ["--pit"], ["--pit", "-x", "replay"], ["--pi", "d", "replay", "x"])


def test_only_the_command_run_is_built():
    for argv in command_lines():
        assert parsed(build_parser(_command_named(argv)), argv) == \
            parsed(build_parser(), argv), argv


QUICK = [["replay", "specialist", "ACME"], ["--pit", "d", "replay", "specialist", "ACME", "BTC"],
         ["--pit=d", "replay", "transfers"], ["--pit=", "replay", "x"], ["--pit", "", "replay", "x"],
         ["--pit", "replay", "replay", "x"], ["replay", "x", "y z", "a=b"]]
PARSER = [["replay"], ["replay", "-h"], ["replay", "x", "--from-start"], ["--pit", "-d", "replay", "x"],
          ["--pit", "a", "--pit", "b", "replay", "x"], ["--pi", "a", "replay", "x"],
          ["replay", "x", "-5"], ["replay", "--", "x"], ["--pit", "d", "replay", "x", "--pit", "e"],
          ["book", "ACME"], [], ["--pit", "d"]]


@pytest.mark.parametrize("argv", QUICK + PARSER)
def test_a_plain_replay_needs_no_parser(argv):
    quick = _plain_replay(argv)
    assert (quick is not None) == (argv in QUICK)
    if quick is not None:
        result, _, _ = parsed(build_parser(), argv)
        assert vars(quick) == {"pit": None, **result}
