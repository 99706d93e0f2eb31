"""The printer shows data as written: table cells are never read as rich markup or emoji."""

from __future__ import annotations

import pytest

from cli import output

DATA = ["[/x]", "[bold]loud[/bold]", ":smile:", "<script>alert(1)</script>"]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.sys.stdout, "isatty", lambda: False)
    output.console.cache_clear()


def test_table_cells_are_printed_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    output.print_table("Runs", ("value",), [(text,) for text in DATA])
    printed = capsys.readouterr().out
    assert all(text in printed for text in DATA)


def test_field_values_are_printed_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    output.print_fields("Run 1", [(f"field {n}", text) for n, text in enumerate(DATA)])
    printed = capsys.readouterr().out
    assert all(text in printed for text in DATA)
