"""The packages' layering, read from their import statements.

``fabric`` never imports ``collectives``; the collective layer never imports
``collectives.training`` (only the package's re-exports, the ``collectives.step`` alias and
the command line sit above both); no module imports another module's private ``_name``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABOVE_BOTH = {"collectives/__init__.py", "collectives/step.py", "collectives/cli.py"}


def _imports(path):
    """(module, names) of every import in ``path``, at any depth (lazy imports count)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _sources(package):
    return sorted((ROOT / package).rglob("*.py"))


def test_sources_found():
    assert len(_sources("fabric")) > 10 and len(_sources("collectives/training")) >= 10


@pytest.mark.parametrize("path", _sources("fabric"), ids=lambda p: str(p.relative_to(ROOT)))
def test_fabric_never_imports_collectives(path):
    assert not [m for m, _ in _imports(path) if m.split(".")[0] == "collectives"]


@pytest.mark.parametrize("path", [p for p in _sources("collectives") if "training" not in p.parts
                                  and str(p.relative_to(ROOT)) not in ABOVE_BOTH],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_collective_layer_never_imports_training(path):
    assert not [m for m, _ in _imports(path) if m.startswith("collectives.training")]


@pytest.mark.parametrize("path", _sources("fabric") + _sources("collectives"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_modules(path):
    private = [(m, n) for m, names in _imports(path) if m.split(".")[0] in ("fabric", "collectives")
               for n in names if n.startswith("_")]
    assert not private, f"{path.name} imports private names {private}"
