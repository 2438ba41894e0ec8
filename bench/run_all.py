"""``make bench``: every benchmark, one table.

1. The backlog query (``video_backlog_get()``) at 10 thousand, 1 million and
   10 million videos with 1,000 waiting, with and without ``video_backlog_idx``
   (``bench.backlog_query``'s functions).
2. One tick in-app versus the old HTTP path (``bench.tick_vs_http``).
3. The Celery worker's resident memory and CPU time per tick over 100 ticks
   (``bench.worker_ticks``).
4. Video leases at 1 million videos with 1,000 live leases (``bench.leases``):
   a renewal's cost, the recovery queries with and without their partial
   index, and how many renewing workers one gunicorn sync worker serves.

Each part runs in a process of its own (each sets Django up against a database
of its own), all on loopback, PostgreSQL from ``BENCH_DATABASE_URL`` (default
postgres://postgres@127.0.0.1:5432/postgres) and Redis db 12. Progress goes to
stderr, the table to stdout. Not a test: ``make test`` never runs it.

    python -m bench.run_all [--rows 10000,1000000,10000000] [--ticks 100] [--lease-rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

from bench import backlog_query
from bench.common import BASE_DIR, DEFAULT_SERVER_URL, database_drop


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def query_measure(
    *, rows: list[int], waiting: int, runs: int, server_url: str
) -> list[dict[str, Any]]:
    """Part 1 in this process (it sets Django up on ``academy_bench``)."""
    backlog_query.database_recreate(server_url)
    backlog_query.django_setup(backlog_query._bench_url(server_url))
    from django.db import connection

    results: list[dict[str, Any]] = []
    try:
        for count in rows:
            backlog_query.index_ensure()
            started = time.perf_counter()
            backlog_query.table_fill(rows=count, waiting=waiting)
            fill_s = time.perf_counter() - started
            _progress(f"query: filled {count:,} videos in {fill_s:.1f} s")
            for indexed in (True, False):
                if not indexed:
                    backlog_query.index_drop()
                result = backlog_query.measure(
                    rows=count, waiting=waiting, runs=runs, indexed=indexed
                )
                results.append({**asdict(result), "fill_seconds": round(fill_s, 1)})
    finally:
        connection.close()
        database_drop(backlog_query.BENCH_DB, server_url=server_url)
    return results


def _part_json(argv: list[str], *, server_url: str, timeout: float) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=BASE_DIR,
        env={**os.environ, "BENCH_DATABASE_URL": server_url},
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table_lines(
    query: list[dict[str, Any]],
    tick: dict[str, Any],
    worker: dict[str, Any],
    *,
    runs: int,
    leases: dict[str, Any] | None = None,
) -> list[str]:
    lines = [
        "| part | case | figure | note |",
        "|---|---|---|---|",
    ]
    indexed_ms = {r["rows"]: r["median_ms"] for r in query if r["indexed"]}
    for r in query:
        case = (
            f"{r['rows']:,} videos, {r['waiting']:,} waiting, "
            f"{'index' if r['indexed'] else 'index dropped'}"
        )
        note = r["plan"]
        if not r["indexed"] and r["rows"] in indexed_ms:
            ratio = r["median_ms"] / indexed_ms[r["rows"]]
            note += f"; {ratio:,.{1 if ratio < 10 else 0}f}x the indexed median"
        lines.append(
            f"| backlog query ({runs} runs) | {case} "
            f"| median {r['median_ms']:.3f} ms, p95 {r['p95_ms']:.3f} ms | {note} |"
        )
    where = f"{tick['rows']:,} videos, {tick['waiting']:,} waiting, {tick['runs']} runs"
    lines.append(
        "| one tick | in-app: claim, count, PutMetricData, audit row "
        f"| median {tick['in_app_median_ms']:.2f} ms, p90 {tick['in_app_p90_ms']:.2f} ms "
        f"| {where} |"
    )
    lines.append(
        "| one tick | old path: HTTP GET through gunicorn, PutMetricData "
        f"| median {tick['http_median_ms']:.2f} ms, p90 {tick['http_p90_ms']:.2f} ms "
        f"| {tick['ratio']:.2f}x the in-app median |"
    )
    label = f"worker, {worker['ticks']} ticks"
    lines.append(
        f"| {label} | CPU time per tick (prefork child, user + system) "
        f"| {worker['cpu_per_tick_ms']:.1f} ms | mean of ticks 2-{worker['ticks']}; "
        f"first tick {worker['cpu_first_tick_ms']:.0f} ms |"
    )
    lines.append(
        f"| {label} | resident memory (prefork child, VmRSS) "
        f"| start {worker['rss_after_first_mib']:.1f} MiB, end {worker['rss_end_mib']:.1f} MiB, "
        f"max {worker['rss_max_mib']:.1f} MiB "
        f"| {worker['rss_ready_mib']:.1f} MiB before the first task; start = after it |"
    )
    lines.append(
        f"| {label} | tick duration | median {worker['tick_median_ms']:.2f} ms "
        f"| the task's own duration_ms; send to audit row {worker['wall_median_ms']:.2f} ms |"
    )
    if leases is not None:
        lines += lease_lines(leases)
    return lines


def lease_lines(data: dict[str, Any]) -> list[str]:
    """Part 4's rows (``bench.leases --json``)."""
    where = f"{data['rows']:,} videos, {data['live']:,} live leases"
    renew, api = data["renew"], data["api"]
    lines = [
        f"| leases | renew in-process ({renew['runs']} runs), {where} "
        f"| median {renew['median_ms']:.3f} ms, p95 {renew['p95_ms']:.3f} ms "
        f"| UPDATE: {renew['scan']}; {renew['queries']} queries (UPDATE, read-back) |"
    ]
    for r in data["recovery"]:
        dropped = ", ".join(r["dropped"]) or "none"
        lines.append(
            f"| leases | recovery query '{r['query']}' ({r['found']} rows), indexes dropped: "
            f"{dropped} | median {r['median_ms']:.3f} ms, p95 {r['p95_ms']:.3f} ms "
            f"| {r['scan']}; {r['shared_hit'] + r['shared_read']} buffers |"
        )
    for p in api["phases"]:
        load = "closed loop" if p["rate"] is None else f"steady {p['rate']}/s"
        lines.append(
            f"| leases | worker API renew, 1 gunicorn sync worker, {load}, {p['threads']} "
            f"threads | {p['requests_per_s']} req/s, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms "
            f"| {p['worker_cpu_ms_per_request']} ms worker CPU per request; no keep-alive |"
        )
    lines.append(
        f"| leases | renewing workers one gunicorn sync worker serves "
        f"| {api['workers_served']:,} | capacity x {api['renew_period_s']} s renew period "
        f"({api['workers_at_capacity']:,}) / safety factor {api['safety_factor']} |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=backlog_query._rows_arg, default=[10_000, 1_000_000, 10_000_000]
    )
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50, help="backlog query runs per case")
    parser.add_argument("--tick-runs", type=int, default=50, help="in-app / HTTP tick pairs")
    parser.add_argument("--ticks", type=int, default=100, help="ticks sent to the worker")
    parser.add_argument("--lease-rows", type=int, default=1_000_000, help="videos for part 4")
    parser.add_argument(
        "--server-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL),
    )
    # Internal: part 1 alone, as JSON (run in a child process by the full run).
    parser.add_argument("--query-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.waiting < 1 or args.tick_runs < 3 or args.ticks < 2:
        parser.error("--runs 1+, --waiting 1+, --tick-runs 3+ and --ticks 2+ please")

    if args.query_only:
        results = query_measure(
            rows=args.rows, waiting=args.waiting, runs=args.runs, server_url=args.server_url
        )
        print(json.dumps(results))
        return 0

    started = time.monotonic()
    rows = ",".join(str(r) for r in args.rows)
    _progress(f"1/4 backlog query at {rows} videos ...")
    query = _part_json(
        ["bench.run_all", "--query-only", "--rows", rows, "--waiting", str(args.waiting),
         "--runs", str(args.runs), "--server-url", args.server_url],
        server_url=args.server_url,
        timeout=1500,
    )  # fmt: skip
    _progress("2/4 one tick in-app versus the old HTTP path ...")
    tick = _part_json(
        ["bench.tick_vs_http", "--json", "--runs", str(args.tick_runs)],
        server_url=args.server_url,
        timeout=600,
    )
    _progress(f"3/4 the worker over {args.ticks} ticks ...")
    worker = _part_json(
        ["bench.worker_ticks", "--json", "--ticks", str(args.ticks)],
        server_url=args.server_url,
        timeout=600,
    )
    _progress(f"4/4 video leases at {args.lease_rows:,} videos ...")
    leases = _part_json(
        ["bench.leases", "--json", "--rows", str(args.lease_rows)],
        server_url=args.server_url,
        timeout=900,
    )
    _progress(f"done in {time.monotonic() - started:.0f} s")
    print("\n".join(table_lines(query, tick, worker, runs=args.runs, leases=leases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
