"""Benchmark: one publishing tick in-app versus the old design's HTTP path.

In-app: ``scaling.publishing.tick.backlog_tick`` -- claim the slot, count the backlog
through the ORM, PutMetricData, write the audit row.
Old path: what the Lambda did -- an HTTP GET of the internal backlog endpoint
through gunicorn (a new connection each time, as a Lambda makes), then the
same PutMetricData.

Both run against the same PostgreSQL database of their own
(``academy_bench_tick``, made and migrated here, dropped at the end) and the
same local AWS endpoint (moto's server on a free loopback port), interleaved
A/B so that drift hits both equally. Not a test; ``make bench`` runs it.

    python -m bench.tick_vs_http --runs 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devstack.localaws import (
    LOCAL_CREDENTIALS,
    local_aws_bootstrap,
    moto_server,
    port_free_get,
    port_wait,
)

BASE_DIR = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "academy_bench_tick"
KEY = "bench-internal-key"


def _database_recreate() -> str:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    return SERVER_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def _database_drop() -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB))
        )


def _fill(db_url: str, *, rows: int, waiting: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at)
            SELECT 'Lecture ' || g,
                   CASE WHEN g %% %(step)s = 0 THEN 'UPLOADED' ELSE 'READY' END,
                   now(), now(), now() - (g || ' seconds')::interval
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"rows": rows, "step": max(1, rows // waiting)},
        )
        conn.execute("VACUUM ANALYZE video_video")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 3 or args.rows < args.waiting or args.waiting < 1:
        parser.error("--runs must be 3 or more and --rows at least --waiting (1 or more)")

    db_url = _database_recreate()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tick-"))
    gunicorn: subprocess.Popen[bytes] | None = None
    try:
        with moto_server() as endpoint:
            created = local_aws_bootstrap(endpoint)
            env = {
                **os.environ,
                **LOCAL_CREDENTIALS,
                "DATABASE_URL": db_url,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": created["region"],
                "SCALING_SQS_QUEUE_URL": created["queue_url"],
                "SCALING_STATE_URL": f"file://{tmp / 'state'}",
                "ACADEMY_VAR_DIR": str(tmp / "var"),
                "INTERNAL_API_KEY": KEY,
                "DEBUG": "true",
                "LOG_LEVEL": "WARNING",
            }
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                cwd=BASE_DIR,
                env=env,
                check=True,
            )
            _fill(db_url, rows=args.rows, waiting=args.waiting)
            port = port_free_get()
            gunicorn = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "academy.wsgi",
                    "-b",
                    f"127.0.0.1:{port}",
                    "-w",
                    "2",
                    "--log-level",
                    "warning",
                ],
                cwd=BASE_DIR,
                env=env,
            )
            port_wait("127.0.0.1", port)
            os.environ.update(env)
            result = _measure(args, f"http://127.0.0.1:{port}")
    finally:
        if gunicorn is not None:
            gunicorn.terminate()
            gunicorn.wait(timeout=10)
        _database_drop()

    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"One tick, {args.runs} runs each, {args.rows:,} videos ({args.waiting:,} waiting), "
            "PostgreSQL + local AWS endpoint on loopback"
        )
        print(f"{'path':<44} {'median ms':>10} {'p90 ms':>9}")
        print(
            f"{'in-app tick (count, publish, record)':<44} "
            f"{result['in_app_median_ms']:>10.2f} {result['in_app_p90_ms']:>9.2f}"
        )
        print(
            f"{'old path (HTTP GET via gunicorn, publish)':<44} "
            f"{result['http_median_ms']:>10.2f} {result['http_p90_ms']:>9.2f}"
        )
        print(f"ratio old/in-app: {result['ratio']:.2f}x")
    return 0


def _measure(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    django.setup()
    from scaling.metric_spec import metric_spec_get
    from scaling.publishing.cloudwatch import metric_publish
    from scaling.publishing.tick import backlog_tick

    spec = metric_spec_get()
    url = f"{base_url}/api/v1/internal/video/backlog-count/"
    base = datetime.now(UTC) - timedelta(hours=6)
    in_app: list[float] = []
    http: list[float] = []
    values: set[int] = set()
    for i in range(args.runs + 3):  # three warm-up rounds
        started = time.perf_counter()
        tick = backlog_tick(now=base + timedelta(seconds=60 * i))
        in_app_ms = (time.perf_counter() - started) * 1000
        if not tick.published:
            raise SystemExit(f"error: the in-app tick did not publish: {tick.error}")

        started = time.perf_counter()
        request = urllib.request.Request(url, headers={"X-Internal-Key": KEY})  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            backlog = int(json.load(response)["backlog_count"])
        metric_publish(
            spec=spec,
            timestamp=base + timedelta(seconds=60 * i + 30),
            backlog=backlog,
            oldest_age_seconds=None,
        )
        http_ms = (time.perf_counter() - started) * 1000
        values.update({backlog, tick.value or -1})
        if i >= 3:
            in_app.append(in_app_ms)
            http.append(http_ms)
    if len(values) != 1:
        raise SystemExit(f"error: the two paths measured different backlogs: {sorted(values)}")
    return {
        "runs": args.runs,
        "rows": args.rows,
        "waiting": args.waiting,
        "backlog": values.pop(),
        "in_app_median_ms": round(_median(in_app), 3),
        "in_app_p90_ms": round(_p(in_app, 0.9), 3),
        "http_median_ms": round(_median(http), 3),
        "http_p90_ms": round(_p(http, 0.9), 3),
        "ratio": round(_median(http) / _median(in_app), 2),
    }


if __name__ == "__main__":
    sys.exit(main())
