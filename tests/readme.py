"""The README's code blocks, for the tests that hold the README to what it says."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(heading: str, language: str) -> str:
    """The first ```language block of the README's section under ``heading``."""
    _, found, rest = README.read_text().partition(f"\n{heading}\n")
    assert found, f"README.md has no {heading!r} section"
    section = rest.split("\n## ", 1)[0]
    _, found, rest = section.partition(f"```{language}\n")
    assert found, f"README.md's {heading!r} has no {language} block"
    return rest.split("```", 1)[0]
