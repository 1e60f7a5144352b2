"""`macrobase explain` loads only what it uses (DESIGN.md "Startup").

Each test runs the command line in a fresh interpreter and reads ``sys.modules`` at exit:
``-X importtime`` cannot tell, since it lists a declined (failed) import like a loaded one.
No wall-clock time is asserted here (the machine is shared); benchmarks/bench_startup.py
measures it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from macrobase.synthetic import ATTRIBUTES, planted_table

#: Packages the explain path must not import: the streaming stack (Beam, Kafka clients),
#: the service's (pydantic, Dash), and the heavy optional ones its libraries probe for.
FORBIDDEN = {"apache_beam", "pydantic", "dash", "kafka", "confluent_kafka", "pandas", "scipy"}

#: Runs ``macrobase.cli`` as ``python -m macrobase.cli`` does, then prints the top-level
#: packages loaded and whether the declining finder is still installed, as JSON on stderr.
AS_THE_CLI = (
    "import atexit, json, runpy, sys\n"
    "def report():\n"
    "    print(json.dumps({'packages': sorted({m.split('.')[0] for m in sys.modules}),\n"
    "                      'finders': [type(f).__name__ for f in sys.meta_path]}), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "sys.argv[0] = 'macrobase'\n"
    "runpy.run_module('macrobase.cli', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    table, causes = planted_table(20_000, seed=1)
    path = tmp_path_factory.mktemp("startup") / "t.parquet"
    pq.write_table(table, path)
    return path, causes


def run_cli(code: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == 0, r.stderr
    return r, json.loads(r.stderr.strip().splitlines()[-1])


def explain_args(path, *extra: str) -> list[str]:
    return ["explain", str(path), "--metric", "power_drain", "--attributes", ",".join(ATTRIBUTES), *extra]


@pytest.mark.parametrize("extra", [
    ("--classifier", "mad", "--format", "json"),
    ("--classifier", "percentile", "--read", "stream", "--threads", "1"),   # passes, table output
    ("--classifier", "predicate", "--predicate", ">= 150", "--max-p-value", "0.01", "--format", "json"),
], ids=["mad-json", "stream-table", "p-values"])
def test_explain_imports_no_heavy_package(small_file, extra):
    path, causes = small_file
    r, seen = run_cli(AS_THE_CLI, *explain_args(path, *extra))
    assert FORBIDDEN.isdisjoint(seen["packages"]), sorted(FORBIDDEN & set(seen["packages"]))
    assert "numba" in seen["packages"] and "pyarrow" in seen["packages"]  # the packages we do use
    assert "_Decline" not in seen["finders"]  # removed once the command is done
    if "json" in extra:
        doc = json.loads(r.stdout)
        assert doc["total"] == 20_000 and doc["explanations"]
        assert all(isinstance(e["p_value"], float) and 0 <= e["p_value"] <= 1 for e in doc["explanations"])
        assert all(c in [e["attributes"] for e in doc["explanations"]] for c in causes)
    else:
        assert "risk_ratio" in r.stdout and "p-value" in r.stdout


def test_declined_packages_load_again_after_the_command(small_file):
    # main() declines only for its own command line; once it returns, the process may
    # import pandas and SciPy as usual (and main([...]) from a program never declines).
    path, _ = small_file
    code = ("import json, sys; from macrobase.cli import main\n"
            "sys.argv = ['macrobase', *sys.argv[1:]]\n"
            "assert main() == 0\n"
            "declined = sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'scipy'})\n"
            "import pandas, scipy.stats\n"
            "assert main(sys.argv[1:]) == 0\n"
            "print(json.dumps({'declined_first': declined}), file=sys.stderr)\n")
    r, seen = run_cli(code, *explain_args(path, "--classifier", "mad", "--format", "json"))
    assert seen["declined_first"] == []
    first, second = r.stdout.strip().splitlines()
    assert json.loads(first) == json.loads(second)  # the same answer with pandas and SciPy loaded


def test_the_p_value_code_does_not_import_scipy_stats():
    # Outside the command line nothing is declined: Numba imports the bare scipy package
    # (a version check), but the p-values need neither scipy.stats nor scipy.special.
    code = ("import sys, json; from explain.significance import fisher_greater\n"
            "fisher_greater([5, 900], [10, 1000], [20, 10_000], [1000, 1_000_000])\n"
            "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('scipy.'))}), "
            "file=sys.stderr)\n")
    _, seen = run_cli(code)
    assert not [m for m in seen["modules"] if m.startswith(("scipy.stats", "scipy.special"))], seen["modules"]
