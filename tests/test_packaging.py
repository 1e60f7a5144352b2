"""Packaging: the declared dependencies, the wheel as a user installs it, the layout guard.

``test_wheel_*`` build the wheel from a copy of the source (so no ``build/`` appears in the
checkout), make a fresh venv in a temporary folder, ``pip install`` the wheel there with its
dependencies resolved from ``[project] dependencies`` (constrained to requirements.txt's
pins, from the machine's package index) and run the installed ``macrobase`` from another
folder with ``PYTHONPATH`` unset. That costs about 45 s (pip about 40 of them, from a warm
pip cache), and is the point: a venv that borrowed this project's ``.venv`` site-packages
(``--system-site-packages`` or a ``.pth`` file) would also see the editable install's
metadata and finder and every package the ranges forgot, so it could not catch a missing
dependency, a missing data file or a module left out of the wheel.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("macrobase", "operators", "explain", "connectors", "dashboard")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Imported directly, declared through the package that pins its exact version.
VIA = {"pydantic-core": "pydantic"}
PLANTED = "device_model=M101 AND firmware=0.4"


def _declared(*groups: str) -> dict[str, Requirement]:
    reqs = list(PYPROJECT["dependencies"])
    for g in groups:
        reqs += PYPROJECT["optional-dependencies"][g]
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.txt pins exactly: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def test_pins_fall_in_the_declared_ranges():
    declared, pins = _declared("test", "bench"), _pins()
    assert sorted(declared) == sorted(pins), "pyproject.toml and requirements.txt name the same packages"
    outside = {n: (pins[n], str(r.specifier)) for n, r in declared.items() if pins[n] not in r.specifier}
    assert not outside


def _imported(folder: str) -> set[str]:
    """Top-level names of third-party modules imported anywhere under ``folder`` (including
    function-level imports and docstring examples)."""
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        text = path.read_text()
        sources = [text] + [ex.source for ex in _doctest_examples(text)]
        for src in sources:
            try:
                tree = ast.parse(src)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in PACKAGES
            and n not in ("tests", "benchmarks", "__future__")}


def _doctest_examples(text: str):
    import doctest

    parser = doctest.DocTestParser()
    tree = ast.parse(text)
    for node in ast.walk(tree):
        doc = ast.get_docstring(node, clean=False) if isinstance(
            node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else None
        if doc and ">>>" in doc:
            yield from parser.get_examples(doc)


@pytest.mark.parametrize("folders, groups", [
    (PACKAGES, ()),  # the product needs only [project] dependencies
    (("tests",), ("test",)),
    (("benchmarks",), ("bench",)),
])
def test_every_import_is_declared(folders, groups):
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    declared = _declared(*groups)
    missing = {}
    for name in set().union(*map(_imported, folders)):
        dists = {canonicalize_name(d) for d in owners.get(name, [])}
        assert dists, f"{name} is imported but installed by no distribution"
        if not any(d in declared or VIA.get(d) in declared for d in dists):
            missing[name] = sorted(dists)
    assert not missing, f"imported but not declared for {folders}: {missing}"


# Runtime dependencies the product needs without importing them itself.
INDIRECT = {"adbc-driver-manager": "the ADBC drivers' DB-API layer",
            "crc32c": "kafka-python's CRC-32C of record batches"}


def test_every_runtime_dependency_is_used():
    from importlib.metadata import packages_distributions

    used = {canonicalize_name(d) for name in set().union(*map(_imported, PACKAGES))
            for d in packages_distributions().get(name, [])}
    unused = sorted(set(_declared()) - used - set(INDIRECT))
    assert not unused, (f"[project] dependencies no product module imports: {unused} "
                        "(move test- or bench-only ones to those extras)")


def test_guard_passes_on_this_checkout():
    from macrobase import _toplevel

    _toplevel.check()


def test_guard_names_a_shadowing_package(tmp_path):
    fake = tmp_path / "explain"
    fake.mkdir()
    (fake / "__init__.py").write_text('"""Someone else\'s explain."""\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", "import macrobase"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "PackageConflictError" in r.stderr
    assert f"explain: imported from {fake / '__init__.py'}" in r.stderr
    assert "own virtual environment" in r.stderr


# --- the wheel, installed as a user would -------------------------------------------------

def _run(argv, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{argv} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*PACKAGES, "examples"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
         cwd=dist, timeout=300)
    (found,) = dist.glob("macrobase_streaming-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """``(bin, env, cwd)`` of a fresh venv holding the wheel and its declared dependencies."""
    home = tmp_path_factory.mktemp("user")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["NUMBA_CACHE_DIR"] = str(home / "numba")
    target = home / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    bin_ = target / "bin"
    _run([bin_ / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-c", ROOT / "requirements.txt", wheel], cwd=home, env=env, timeout=900)
    return bin_, env, home


def test_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {p.relative_to(ROOT).as_posix() for name in PACKAGES for p in (ROOT / name).rglob("*.py")
            if "__pycache__" not in p.parts}
    assert want - names == set()
    assert {"dashboard/assets/dashboard.css", "macrobase/examples/telemetry.csv.gz",
            "macrobase/examples/file.yaml", "macrobase/examples/telemetry.yaml"} <= names


def test_wheel_imports_from_its_own_venv(installed):
    bin_, env, cwd = installed
    r = _run([bin_ / "python", "-c", "import sys, macrobase, operators, explain, connectors, dashboard\n"
              "print('\\n'.join(m.__file__ for m in (macrobase, operators, explain, connectors, dashboard)))\n"
              "print(sys.path)"], cwd=cwd, env=env, timeout=120)
    files, path = r.stdout.splitlines()[:5], r.stdout.splitlines()[5]
    site = bin_.parent / "lib"
    assert all(Path(f).is_relative_to(site) for f in files), files
    assert str(ROOT) not in path
    _run([bin_ / "python", "-m", "pip", "check"], cwd=cwd, env=env, timeout=120)


def test_wheel_explains_the_bundled_sample(installed):
    bin_, env, cwd = installed
    r = _run([bin_ / "macrobase", "--help"], cwd=cwd, env=env, timeout=120)
    assert "explain" in r.stdout and "demo" in r.stdout
    sample = _run([bin_ / "python", "-c", "from importlib.resources import files\n"
                   "print(files('macrobase.examples') / 'telemetry.csv.gz')"],
                  cwd=cwd, env=env, timeout=60).stdout.strip()
    assert Path(sample).is_relative_to(bin_.parent), sample
    r = _run([bin_ / "macrobase", "explain", sample, "--metric", "power_drain",
              "--attributes", "device_model,firmware,region,carrier", "--classifier", "mad",
              "--score-cutoff", "3", "--min-support", "0.05"], cwd=cwd, env=env, timeout=300)
    assert r.stdout.startswith("20,000 rows, 208 outliers"), r.stdout
    assert PLANTED in r.stdout


def test_wheel_refuses_another_distributions_package(installed):
    """A distribution that also ships ``operators/`` (pip mixes its files into ours)."""
    bin_, env, cwd = installed
    site = Path(_run([bin_ / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=cwd, env=env, timeout=60).stdout.strip())
    info = site / "other_operators-1.0.dist-info"
    module = site / "operators" / "other.py"
    try:
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: other-operators\nVersion: 1.0\n")
        (info / "RECORD").write_text("operators/other.py,,\nother_operators-1.0.dist-info/METADATA,,\n"
                                     "other_operators-1.0.dist-info/RECORD,,\n")
        module.write_text("OTHER = True\n")
        r = subprocess.run([bin_ / "macrobase", "--help"], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=120)
    finally:
        module.unlink(missing_ok=True)
        shutil.rmtree(info, ignore_errors=True)
    assert r.returncode == 1
    assert "PackageConflictError" in r.stderr
    assert "operators: operators/other.py is not part of macrobase-streaming" in r.stderr
    assert "'operators' is also provided by other-operators" in r.stderr
    _run([bin_ / "macrobase", "--help"], cwd=cwd, env=env, timeout=120)  # and fine again

    init = site / "dashboard" / "__init__.py"  # one that replaced our __init__.py
    ours = init.read_bytes()
    try:
        init.write_bytes(ours.replace(b"Live dashboard", b"Some dashboard"))
        r = subprocess.run([bin_ / "macrobase", "--help"], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=120)
    finally:
        init.write_bytes(ours)
    assert r.returncode == 1
    assert "dashboard: dashboard/__init__.py was overwritten by another distribution" in r.stderr
