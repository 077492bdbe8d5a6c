"""Run the CLI in-process and capture what a user would see."""

from __future__ import annotations

from dataclasses import dataclass

from convscope.cli.main import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def cli(capsys, *args) -> Outcome:
    """``convscope ARGS`` in this process (fast: no interpreter start, no torch import)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def one_line_error(outcome: Outcome, code: int = 1) -> str:
    """Assert the run failed with exactly one ``error:`` line and no traceback; return the line."""
    assert outcome.code == code, (outcome.code, outcome.err)
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.err
    assert "Traceback" not in outcome.err
    return lines[0]
