"""The architecture, checked: the layer contracts (import-linter), no import cycle, one construction
site per runtime, only the CLI exits, and the top level holds only the ground floor."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edgec"
GROUND_FLOOR = {"__init__.py", "environment.py", "errors.py", "fsio.py", "logs.py"}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.is_file(), "import-linter is a test dependency (pyproject's test extra)"
    res = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    # the layers, validate/bench above conversion, formats at the bottom
    assert "Contracts: 3 kept, 0 broken." in res.stdout, res.stdout[-2000:]


def test_no_import_cycle():
    grimp = pytest.importorskip("grimp")  # installed with import-linter
    graph = grimp.build_graph("edgec", include_external_packages=False, exclude_type_checking_imports=True)
    cycles = []
    for mod in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(mod):
            if graph.chain_exists(importer=imported, imported=mod):
                cycles.append(f"{mod} <-> {imported}: {graph.find_shortest_chain(importer=imported, imported=mod)}")
    assert not cycles, "\n".join(cycles)


def _constructions(name: str) -> dict[str, int]:
    """Modules of edgec that call ``...name(...)`` (a runtime's session/interpreter constructor)."""
    sites: dict[str, int] = {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
                if called == name:
                    rel = str(path.relative_to(ROOT))
                    sites[rel] = sites.get(rel, 0) + 1
    return sites


@pytest.mark.parametrize("constructor", ["Interpreter", "InferenceSession"])
def test_each_runtime_is_constructed_in_one_module(constructor):
    sites = _constructions(constructor)
    assert len(sites) == 1, f"{constructor}( is constructed in {sorted(sites)}: only edgec/runtime may"
    assert next(iter(sites)).startswith("edgec/runtime/"), sites


def _exits(tree: ast.AST) -> list[int]:
    """Lines that end the process: sys.exit/exit/quit/os._exit calls and ``raise SystemExit``, outside an
    ``if __name__ == "__main__":`` block (a script's entry point is not library code)."""
    lines = []

    def main_guard(node) -> bool:
        t = node.test
        return (isinstance(node, ast.If) and isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
                and t.left.id == "__name__")

    def visit(node):
        if isinstance(node, ast.If) and main_guard(node):
            return
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Attribute) and f.attr in ("exit", "_exit") and isinstance(f.value, ast.Name)
                    and f.value.id in ("sys", "os")) or (isinstance(f, ast.Name) and f.id in ("exit", "quit")):
                lines.append(node.lineno)
        if isinstance(node, ast.Raise) and node.exc is not None:
            e = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(e, ast.Name) and e.id == "SystemExit":
                lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return lines


def test_only_the_cli_exits():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path, tree in _modules()
                 if path.relative_to(PKG).parts[0] != "cli" for line in _exits(tree)]
    assert not offenders, f"library code ends the process (raise an EdgecError instead): {offenders}"


def test_exit_check_sees_an_exit():
    tree = ast.parse("import sys\ndef f():\n    sys.exit(2)\nif __name__ == '__main__':\n    sys.exit(f())\n")
    assert _exits(tree) == [3]


def test_top_level_is_the_ground_floor():
    flat = {p.name for p in PKG.glob("*.py")}
    assert flat == GROUND_FLOOR, f"flat modules beyond the ground floor: {sorted(flat - GROUND_FLOOR)}"
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()}
    assert {"formats", "convert", "passes", "runtime", "data", "validate", "bench", "targets", "pipeline",
            "bundle", "report", "cli"} <= packages
