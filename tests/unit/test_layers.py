"""The layers of bgproc, kept: each package imports only from the layers below it.

timing (pure) < store < services < runtime < installation < the front ends (cli, web); the
core modules beside them (errors, settings, statuses, outages, registry) import only each
other and timing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = {"bgproc", "bgproc.errors", "bgproc.settings", "bgproc.statuses", "bgproc.outages",
        "bgproc.registry", "bgproc.progress"}  # fmt: skip
ALLOWED: dict[str, tuple[str, ...]] = {  # a layer: the prefixes it may import from
    "bgproc.timing": ("bgproc.timing", "bgproc.errors"),
    "core": ("bgproc.timing", *CORE),
    "bgproc.store": ("bgproc.store", "bgproc.timing", *CORE),
    "bgproc.services": ("bgproc.services", "bgproc.store", "bgproc.timing", *CORE),
    "bgproc.runtime": (
        "bgproc.runtime", "bgproc.services", "bgproc.store", "bgproc.timing", *CORE,
        "bgproc.installation",  # a worker or beat resolves its installation
    ),
    "bgproc.web": (  # a front end, as cli is: it drives the services, never the runtime
        "bgproc.web", "bgproc.services", "bgproc.store", "bgproc.timing", *CORE,
        "bgproc.installation",
    ),
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    if module in CORE:
        return "core"
    return next((layer for layer in ALLOWED if (module + ".").startswith(layer + ".")), None)


def _allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """A core module by its name; a layer's package and everything in it."""
    return any(name == a or (a not in CORE and name.startswith(a + ".")) for a in allowed)


def _imports(path: Path) -> set[str]:
    """Every bgproc or cli module ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("bgproc", "cli")}


MODULES = sorted(p for p in (ROOT / "bgproc").rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module(p))
def test_a_module_imports_only_from_the_layers_below(path: Path) -> None:
    module = _module(path)
    layer = _layer(module)
    if layer is None:  # the composition root and the entry point may reach everything
        assert module in ("bgproc.installation", "bgproc.__main__"), f"{module}: which layer?"
        return
    wrong = sorted(name for name in _imports(path) if not _allowed(name, ALLOWED[layer]))
    assert not wrong, f"{module} ({layer}) imports {', '.join(wrong)}"


def test_nothing_in_bgproc_imports_the_cli() -> None:
    for path in MODULES:
        if _module(path) != "bgproc.__main__":
            assert not [n for n in _imports(path) if n.startswith("cli")], _module(path)
