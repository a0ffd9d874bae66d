"""The layer rule of docs/architecture.md, checked on the source: the core imports no paper package, the paper
packages never import each other, and nothing but the command imports ``flowprune``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

#: package -> the first-party packages it may import
ALLOWED = {
    "experiments": {"experiments"},
    "hyperflows": {"experiments", "hyperflows"},
    "agf": {"experiments", "agf"},
    "routing": {"experiments", "routing"},
    "flowprune": {"experiments", "hyperflows", "agf", "routing", "flowprune"},
}


def first_party_imports(path: Path) -> set[str]:
    """Top-level first-party packages ``path`` imports (absolute imports; relative ones stay in the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out |= {n.split(".")[0] for n in names if n.split(".")[0] in ALLOWED}
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package):
    bad = {str(p.relative_to(ROOT)): sorted(first_party_imports(p) - ALLOWED[package])
           for p in sorted((ROOT / package).rglob("*.py"))}
    assert not {k: v for k, v in bad.items() if v}


def test_the_checker_sees_a_forbidden_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom agf.scorers import create_scorer\nif True:\n    import hyperflows.method\n")
    assert first_party_imports(f) == {"agf", "hyperflows"}
