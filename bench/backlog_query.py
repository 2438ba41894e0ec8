"""Benchmark: the backlog query with and without the partial index.

Fills a PostgreSQL database of its own (``academy_bench``, dropped and created
again on every run) with N videos of which ``--waiting`` are UPLOADED or
PROCESSING, then times ``video.selectors.video_backlog_get()`` -- the one
query the publisher runs, ``backlog_summary_qs()`` (counts and the oldest by
status) -- first with ``video_backlog_idx`` and then after dropping it. Not a
test: ``make bench-query`` runs it, ``make test`` never does.

    python -m bench.backlog_query --rows 10000,1000000,10000000

BENCH_DATABASE_URL names the server (default
postgres://postgres@127.0.0.1:5432/postgres); the user must be allowed to
create databases.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "academy_bench"
INDEX_NAME = "video_backlog_idx"


@dataclass(frozen=True)
class Result:
    rows: int
    waiting: int
    indexed: bool
    median_ms: float
    p95_ms: float
    plan: str  # the node that reads video_video in backlog_summary_qs()'s plan


def _rows_arg(raw: str) -> list[int]:
    try:
        rows = [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a comma-separated list of counts"
        ) from None
    if not rows or min(rows) < 1:
        raise argparse.ArgumentTypeError("row counts must be 1 or more")
    return rows


def _bench_url(server_url: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def database_recreate(server_url: str) -> None:
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))


def django_setup(bench_url: str) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    sys.path.insert(0, str(BASE_DIR))
    import django
    from django.conf import settings

    django.setup()
    # DEBUG (the embedded default) would record every query; not what production pays.
    settings.DEBUG = False
    from django.core.management import call_command
    from django.db import connection

    # Every app: post_migrate handlers of other apps expect their tables.
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        # settings cap statements at 5 s for the publisher; a 10M-row fill may not be.
        cursor.execute("SET statement_timeout = 0")


def table_fill(*, rows: int, waiting: int) -> None:
    """``rows`` videos, ``waiting`` of them spread through the table (3:2 UPLOADED:PROCESSING)."""
    from django.db import connection

    step = max(1, rows // max(1, waiting))
    with connection.cursor() as cursor:
        # CASCADE: video_videorecovery (and any later table) refers to video_video.
        cursor.execute("TRUNCATE video_video RESTART IDENTITY CASCADE")
        cursor.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at)
            SELECT 'Lecture ' || g,
                   CASE
                     WHEN g %% %(step)s = 0 AND g / %(step)s <= %(waiting)s THEN
                       CASE WHEN (g / %(step)s) %% 5 < 3 THEN 'UPLOADED' ELSE 'PROCESSING' END
                     WHEN g %% 50 = 1 THEN 'FAILED'
                     ELSE 'READY'
                   END,
                   t, t, t
            FROM generate_series(1, %(rows)s) AS g,
                 LATERAL (SELECT now() - (%(rows)s - g) * interval '1 second' AS t) AS at
            """,
            {"rows": rows, "waiting": waiting, "step": step},
        )
    # What autovacuum would have done by the time the table is this big:
    # statistics, and a visibility map for index-only scans.
    _autocommit_execute("VACUUM (ANALYZE) video_video")


def _autocommit_execute(statement: str) -> None:
    from django.db import connection

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(statement)


def index_drop(name: str = INDEX_NAME) -> None:
    _autocommit_execute(f"DROP INDEX IF EXISTS {name}")
    _autocommit_execute("ANALYZE video_video")


def index_ensure(name: str = INDEX_NAME) -> None:
    """Create ``name`` (one of ``Video.Meta.indexes``) again if it was dropped."""
    from django.db import connection

    from video.models import Video

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [name])
        if cursor.fetchone():
            return
    (index,) = [index for index in Video._meta.indexes if index.name == name]
    with connection.schema_editor() as editor:
        editor.add_index(Video, index)
    _autocommit_execute("ANALYZE video_video")


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def scan_of(queryset: Any) -> str:
    """The node that reads video_video, e.g. 'Index Only Scan video_backlog_idx'."""
    document = json.loads(queryset.explain(format="json"))
    for node in _plan_nodes(document[0]["Plan"]):
        if node.get("Relation Name") == "video_video" or node.get("Index Name"):
            return " ".join(filter(None, (node["Node Type"], node.get("Index Name"))))
    return document[0]["Plan"]["Node Type"]


def backlog_time(*, runs: int, warmup: int = 5) -> tuple[float, float]:
    from video.selectors import video_backlog_get

    for _ in range(warmup):
        video_backlog_get()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        video_backlog_get()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    return statistics.median(timings), p95


def measure(*, rows: int, waiting: int, runs: int, indexed: bool) -> Result:
    from video.selectors import backlog_summary_qs, video_backlog_get

    backlog = video_backlog_get()
    if backlog.total != min(waiting, rows):
        raise SystemExit(f"error: expected {waiting} waiting videos, measured {backlog.total}")
    median_ms, p95_ms = backlog_time(runs=runs)
    return Result(rows, waiting, indexed, median_ms, p95_ms, scan_of(backlog_summary_qs()))


def table_print(results: list[Result], *, runs: int) -> None:
    print(f"\nvideo_backlog_get(): median and p95 of {runs} runs, milliseconds\n")
    print("| videos | waiting | partial index | median ms | p95 ms | scan |")
    print("|---:|---:|---|---:|---:|---|")
    for r in results:
        print(
            f"| {r.rows:,} | {r.waiting:,} | {'yes' if r.indexed else 'dropped'} "
            f"| {r.median_ms:.3f} | {r.p95_ms:.3f} | {r.plan} |"
        )
    by_rows: dict[int, dict[bool, Result]] = {}
    for r in results:
        by_rows.setdefault(r.rows, {})[r.indexed] = r
    print()
    for rows, pair in by_rows.items():
        if True in pair and False in pair:
            ratio = pair[False].median_ms / pair[True].median_ms
            print(f"{rows:,} videos: without the index the median is {ratio:,.0f}x slower")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=_rows_arg, default=[1_000_000], help="e.g. 10000,1000000")
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
        help="a database on the server where academy_bench is (re)created",
    )
    parser.add_argument("--keep", action="store_true", help=f"keep {BENCH_DB} afterwards")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.waiting < 0:
        parser.error("--runs must be 1 or more and --waiting 0 or more")

    try:
        database_recreate(args.server_url)
    except psycopg.Error as exc:
        print(f"error: cannot create {BENCH_DB} on {args.server_url}: {exc}", file=sys.stderr)
        return 2
    django_setup(_bench_url(args.server_url))
    from django.db import connection

    results = []
    try:
        for rows in args.rows:
            index_ensure()
            started = time.perf_counter()
            table_fill(rows=rows, waiting=args.waiting)
            print(f"filled {rows:,} videos in {time.perf_counter() - started:.1f} s", flush=True)
            results.append(measure(rows=rows, waiting=args.waiting, runs=args.runs, indexed=True))
            index_drop()
            results.append(measure(rows=rows, waiting=args.waiting, runs=args.runs, indexed=False))
    finally:
        connection.close()
        if not args.keep:
            with psycopg.connect(args.server_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(BENCH_DB)
                    )
                )
    table_print(results, runs=args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
