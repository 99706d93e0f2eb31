"""Runs ``bgproc`` in-process through its real entry point, capturing what it prints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from cli.main import main


@dataclass
class Run:
    """One command's exit code and output."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """``cli("request", "list")`` runs the command; ``cli.ok(...)`` also asserts exit 0."""

    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> Run:
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def ok(self, *args: str) -> Run:
        result = self(*args)
        assert result.code == 0, result.err
        return result
