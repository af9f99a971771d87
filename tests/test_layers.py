"""The packages are layers: each imports only from the ones below it (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import perfmode

ROOT = Path(perfmode.__file__).parent
# Low to high. A package's `__init__` docstring names the layers it may import, in this order.
LAYERS = [
    "errors",
    "base",
    "config",
    "settings",
    "schedule",
    "checkpoint",
    "env",
    "status",
    "governor",
    "training",
    "evaluation",
    "sweep",
    "bench",
    "web",
    "cli",
]
ENTRY_MODULES = {"__init__.py", "__main__.py", "errors.py", "py.typed"}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top package under perfmode, line) for every perfmode import, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: a relative import; spell the layer")
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "perfmode" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_no_package_imports_a_layer_above_it() -> None:
    upward = []
    for pkg in LAYERS[1:]:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for target, line in imported_packages(path):
                if target != pkg and LAYERS.index(target) > LAYERS.index(pkg):
                    upward.append(f"{path.relative_to(ROOT)}:{line} imports perfmode.{target}")
    assert upward == []


def test_each_package_says_what_it_owns_and_which_layers_it_may_import() -> None:
    for pkg in LAYERS[1:]:
        doc = ast.get_docstring(ast.parse((ROOT / pkg / "__init__.py").read_text("utf-8")))
        assert doc, f"{pkg}/__init__.py has no docstring"
        said = re.search(r"May import: ([^.]*)\.", " ".join(doc.split()))
        assert said, f"{pkg}/__init__.py does not say which layers it may import"
        assert said.group(1).split(", ") == list(LAYERS[: LAYERS.index(pkg)]), pkg
        assert len(doc.split("May import:")[0].split()) >= 5, f"{pkg}: say what it owns"


def test_the_top_level_holds_only_the_layers_and_the_entry_modules() -> None:
    entries = {p.name for p in ROOT.iterdir() if p.name != "__pycache__"}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS[1:])
    assert entries - packages <= ENTRY_MODULES
