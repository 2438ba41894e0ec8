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

from bench.common import BASE_DIR, bench_stack, fill_args_parse, percentile
from devstack.localaws import port_free_get, port_wait

BENCH_DB = "academy_bench_tick"
KEY = "bench-internal-key"


def main(argv: list[str] | None = None) -> int:
    args = fill_args_parse(argv, __doc__, "--runs", default=50, least=3, waiting_least=1)

    tmp = Path(tempfile.mkdtemp(prefix="bench-tick-"))
    env_extra = {
        "SCALING_STATE_URL": f"file://{tmp / 'state'}",
        "INTERNAL_API_KEY": KEY,
        "DEBUG": "true",
    }
    with bench_stack(BENCH_DB, tmp, rows=args.rows, waiting=args.waiting, env=env_extra) as env:
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
        try:
            port_wait("127.0.0.1", port)
            os.environ.update(env)
            result = _measure(args, f"http://127.0.0.1:{port}")
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=10)

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
        "in_app_median_ms": round(statistics.median(in_app), 3),
        "in_app_p90_ms": round(percentile(in_app, 0.9), 3),
        "http_median_ms": round(statistics.median(http), 3),
        "http_p90_ms": round(percentile(http, 0.9), 3),
        "ratio": round(statistics.median(http) / statistics.median(in_app), 2),
    }


if __name__ == "__main__":
    sys.exit(main())
