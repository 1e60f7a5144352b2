"""The ``macrobase`` command line."""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import traceback
from typing import Sequence


class UsageError(ValueError):
    """Bad usage or bad input: one line on stderr, exit status 2."""


#: Installed packages ``macrobase explain`` never uses but would pay for (DESIGN.md "Startup"):
#: pyarrow imports pandas on first use, only to recognise pandas objects (~0.15 s); Numba's
#: first kernel load imports scipy.linalg, only to see whether np.dot and np.linalg have a BLAS
#: (~0.2 s; no kernel of ours calls them: operators/_linalg.py has its own Cholesky), and cffi,
#: only to type cffi functions (~0.02 s; we pass none). A command-line explain is one process
#: doing one thing, so it declines them for the process; ``main([...])`` called from another
#: program leaves that program's imports alone.
EXPLAIN_DECLINES = ("pandas", "scipy", "cffi")


class _Decline:
    """A meta-path finder under which ``import NAME`` (or a submodule) fails as if NAME were
    not installed: the libraries that probe for it fall back, as they are written to."""

    def __init__(self, names) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (not used by macrobase explain)",
                                      name=fullname)
        return None


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list of column names")
    return items


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="macrobase", description="Explain anomalies in event streams and files.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("explain", help="one batch DIFF over a CSV / JSON-lines / Parquet file or a database query")
    e.add_argument("source", help="a CSV / JSON-lines / Parquet file, or a database URL "
                                  "(postgresql://user:password@host:port/db, sqlite:///path.db, duckdb:///path.duckdb)")
    sql = e.add_mutually_exclusive_group()
    sql.add_argument("--query", metavar="SQL", help="for a database URL: the query whose rows to explain")
    sql.add_argument("--table", metavar="NAME", help="for a database URL: the table whose rows to explain")
    e.add_argument("--metric", required=True, type=_csv_list,
                   help="metric column (several, comma-separated, for --classifier mcd)")
    e.add_argument("--attributes", required=True, type=_csv_list, help="comma-separated attribute columns")
    # Names, defaults and bounds come from the library (explain.params, operators).
    from explain.params import CHOICES, DEFAULTS, MAX_ORDER
    from macrobase.diff import BATCH_DEFAULTS
    from operators.base import TAILS
    from operators.percentile import DEFAULT_PERCENTILE
    from operators.registry import CLASSIFIERS

    e.add_argument("--classifier", default=BATCH_DEFAULTS.classifier, choices=list(CLASSIFIERS))
    cut = e.add_mutually_exclusive_group()
    cut.add_argument("--percentile", type=float, help=f"outlier cut-off percentile (default {DEFAULT_PERCENTILE:g})")
    cut.add_argument("--score-cutoff", type=float, help="outlier iff score >= this, > 0 (mad, mcd, zscore)")
    cut.add_argument("--predicate", help="for --classifier predicate: e.g. '>= 60'")
    e.add_argument("--tail", default=BATCH_DEFAULTS.tail, choices=list(TAILS))
    e.add_argument("--min-support", type=float, default=DEFAULTS.min_support)
    e.add_argument("--min-ratio", type=float, default=DEFAULTS.min_ratio)
    e.add_argument("--ratio-metric", default=DEFAULTS.ratio_metric, choices=list(CHOICES["ratio_metric"]))
    e.add_argument("--max-order", type=int, default=DEFAULTS.max_order, choices=range(1, MAX_ORDER + 1))
    e.add_argument("--mode", default=DEFAULTS.mode, choices=list(CHOICES["mode"]))
    e.add_argument("--max-p-value", type=float, default=DEFAULTS.max_p_value, metavar="Q",
                   help="keep explanations whose Benjamini-Hochberg adjusted p-value is at most Q (default: off)")
    e.add_argument("--format", default="table", choices=["table", "json"])
    e.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads that read, encode and count (default: every core); same answer for any N")
    e.add_argument("--read", default="auto", choices=["auto", "whole", "stream"],
                   help="whole: into memory; stream: in batches, pass after pass, in bounded memory; "
                        "auto (default): stream a database result, or a file that would take more than "
                        "a quarter of the memory")

    r = sub.add_parser("run", help="run the configured pipelines (no web server)")
    r.add_argument("config")
    r.add_argument("--pipeline", action="append", help="only this pipeline (repeatable)")
    r.add_argument("--for", dest="duration", type=float, metavar="SECONDS", help="stop after this long")

    s = sub.add_parser("serve", help="pipelines + HTTP API + dashboard")
    s.add_argument("config")

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu)")
    b.add_argument("--port", type=int, default=9092)

    d = sub.add_parser("demo", help="the zero-configuration demo")
    d.add_argument("--port", type=int, default=8050)
    return p


def cmd_explain(args: argparse.Namespace) -> int:
    from macrobase.diff import DiffRequest, prepare
    from macrobase.render import format_table

    req = DiffRequest(
        metrics=tuple(args.metric), attributes=tuple(args.attributes), classifier=args.classifier,
        percentile=args.percentile, score_cutoff=args.score_cutoff, predicate=args.predicate,
        tail=args.tail,
        explainer=dict(min_support=args.min_support, min_ratio=args.min_ratio,
                       ratio_metric=args.ratio_metric, max_order=args.max_order, mode=args.mode,
                       max_p_value=args.max_p_value),
    )
    prepare(req)  # bad options fail before reading a big file
    if args.threads:
        import pyarrow
        pyarrow.set_cpu_count(args.threads)  # Arrow's decoding threads too: --threads 1 is one core
    doc = _explain_source(args, req)
    if args.format == "json":
        from macrobase.store import strict_json  # the one strict JSON: inf as "inf", NaN as null
        json.dump(strict_json(doc), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(format_table(doc, args.ratio_metric))
    return 0


def _explain_source(args: argparse.Namespace, req) -> dict:
    """The result document for ``args.source``: a file, or a database URL with --query or
    --table; read whole or pass after pass (``--read``), the answer is the same."""
    from macrobase.diff import CHUNK_ROWS, run_diff, run_diff_passes

    # connectors.sql only for a URL (every URL has "://"); the drivers themselves load only once
    # one is opened. A URL of an unsupported scheme goes there too: SqlInput names the supported ones.
    if "://" in args.source and _looks_like_url(args.source):
        if args.query is None and args.table is None:
            raise UsageError(f"{args.source.split('://')[0]}:// source: give --query SQL or --table NAME")
        from connectors.sql import SqlInput, read_sql
        if args.read == "whole":
            data = read_sql(args.source, req.metrics, req.attributes, query=args.query, table=args.table)
            return run_diff(data.table, req, dropped=data.dropped, threads=args.threads)
        with SqlInput(args.source, req.metrics, req.attributes, query=args.query, table=args.table,
                      batch_rows=CHUNK_ROWS) as source:
            return run_diff_passes(source, req, threads=args.threads)
    if args.query is not None or args.table is not None:
        raise UsageError(f"--{'query' if args.query is not None else 'table'} applies to a database URL, "
                         f"not to the file {args.source}")
    from connectors.files import FileInput, read_file
    source = FileInput(args.source, req.metrics, req.attributes, batch_rows=CHUNK_ROWS)
    if args.read == "stream" or (args.read == "auto" and source.decoded_bytes() > _memory_bytes() // 4):
        return run_diff_passes(source, req, threads=args.threads)
    data = read_file(args.source, req.metrics, req.attributes)
    return run_diff(data.table, req, dropped=data.dropped, threads=args.threads)


def _looks_like_url(text: str) -> bool:
    from connectors.sql import looks_like_url
    return looks_like_url(text)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on Linux: assume a small machine
        return 4 << 30


def cmd_run(args: argparse.Namespace) -> int:
    from macrobase.config import load_config
    from macrobase.runner import run_pipelines

    config = load_config(args.config)
    known = [p.name for p in config.pipelines]
    for name in args.pipeline or []:
        if name not in known:
            raise UsageError(f"--pipeline: no pipeline named {name!r} in {args.config} (have: {', '.join(known)})")
    results = run_pipelines(config, args.pipeline, args.duration)
    for run in results:
        doc = run.last_document or {}
        print(f"{run.pipeline}: {doc.get('events', 0):,} events classified, "
              f"{run.documents} snapshots stored, {doc.get('dead_letters', 0):,} dead letters", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from macrobase.service import run_service

    return run_service(args.config)


def cmd_broker(args: argparse.Namespace) -> int:
    from connectors.broker import run_broker
    return run_broker(args.port)


def cmd_demo(args: argparse.Namespace) -> int:
    from macrobase.demo import run_demo
    return run_demo(port=args.port)


COMMANDS = {"explain": cmd_explain, "run": cmd_run, "serve": cmd_serve, "broker": cmd_broker,
            "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    decline = None
    if argv is None and sys.argv[1:2] == ["explain"]:  # before _parser(): it imports Numba
        decline = _Decline(name for name in EXPLAIN_DECLINES if name not in sys.modules)
        sys.meta_path.insert(0, decline)
        # The imports make ~0.1M objects that live as long as the process (most of them
        # Numba's): collecting them, during the imports and once more at exit, cost ~0.1 s.
        gc.disable()
    try:
        args = _parser().parse_args(argv)
        if decline is not None:
            gc.enable()
            gc.freeze()  # every object so far lives to the end: out of every later collection
        return _main(args)
    finally:
        if decline is not None:
            sys.meta_path.remove(decline)
            gc.enable()
            gc.freeze()  # the process ends now: no final collection over Numba's objects


def _main(args: argparse.Namespace) -> int:
    if args.command != "explain":  # explain reads files and databases, never Kafka
        from connectors.kafka_client import quiet_client_logs
        quiet_client_logs(debug=bool(os.environ.get("MACROBASE_DEBUG")))
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `macrobase explain ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # Every user error in the code base is a ValueError (or an OS error on the path).
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename:
            msg = f"{exc.filename}: {exc.strerror}"
        print(f"macrobase {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        from connectors.chunks import PartitionFailed
        if not isinstance(exc, PartitionFailed):
            return _internal_error(args, exc)
        print(f"macrobase {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # pragma: no cover - a bug, but users still get one line
        return _internal_error(args, exc)


def _internal_error(args: argparse.Namespace, exc: BaseException) -> int:
    if os.environ.get("MACROBASE_DEBUG"):
        traceback.print_exception(exc)
    line = f"{type(exc).__name__}: {exc}".splitlines()[0]
    print(f"macrobase {args.command}: internal error: {line} (set MACROBASE_DEBUG=1 for details)",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
