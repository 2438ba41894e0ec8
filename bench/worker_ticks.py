"""Benchmark: the Celery worker's resident memory and CPU time per tick.

Starts a real ``celery -A academy worker --concurrency 1`` (prefork) against a
PostgreSQL database of its own (``academy_bench_worker``, made, migrated and
dropped here), Redis (``redis://127.0.0.1:6379/12``, flushed before and after;
broker and slot-claim store) and moto's server on a free loopback port. It
sends ``scaling.tasks.publish_backlog_metric`` ``--ticks`` times, one at a time,
and reads the prefork child's ``VmRSS`` and ``utime + stime`` from ``/proc``
before the first tick and after each one.

Each task gets the current time as its ``slot_start`` (so its slot is live and
its audit row distinct) and the slot claims in Redis are deleted before each
send, so every tick does the whole job: claim, count, PutMetricData, audit row.
A tick is done when its audit row is in the database. Not a test; ``make
bench`` runs it.

    python -m bench.worker_ticks --ticks 100 --json
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from celery import Celery

from bench.common import BASE_DIR, bench_stack, fill_args_parse, proc_children, proc_cpu_ms

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
BENCH_DB = "academy_bench_worker"
TASK_NAME = "scaling.tasks.publish_backlog_metric"
CLAIM_PATTERN = "academy:scaling:slot:*"
TICK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class WorkerFigures:
    ticks: int
    rows: int
    waiting: int
    rss_ready_mib: float  # the child before its first task
    rss_end_mib: float
    rss_max_mib: float
    rss_after_first_mib: float
    cpu_first_tick_ms: float
    cpu_per_tick_ms: float  # mean over ticks 2..N (/proc counts in 10 ms clock ticks)
    tick_median_ms: float  # the task's own duration_ms, claim to record
    wall_median_ms: float  # send to audit row seen


def _proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _published_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, float]]:
    return [
        (str(status), float(duration))
        for status, duration in conn.execute(
            "SELECT status, duration_ms FROM scaling_metricpublication ORDER BY id"
        ).fetchall()
    ]


def _audit_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM scaling_metricpublication").fetchone()
    return int(row[0]) if row else 0


def _child_wait(worker: subprocess.Popen[bytes], *, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"error: the celery worker exited with {worker.returncode}")
        children = proc_children(worker.pid)
        if children:
            return children[0]
        time.sleep(0.2)
    raise SystemExit(f"error: the celery worker started no pool child in {timeout:g} s")


def worker_ticks_measure(*, ticks: int, rows: int, waiting: int) -> WorkerFigures:
    store = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    store.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    env_extra = {
        # Production settings: DEBUG off (no query log kept in memory).
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": REDIS_URL,
        "SCALING_STATE_URL": REDIS_URL,
        "SCALING_PUBLISH_INTERVAL_SECONDS": "60",
    }
    try:
        with bench_stack(BENCH_DB, tmp, rows=rows, waiting=waiting, env=env_extra) as env:
            celery_bin = Path(sys.executable).with_name("celery")
            worker = subprocess.Popen(
                [
                    str(celery_bin),
                    "-A",
                    "academy",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp / "worker.log").open("wb"),
            )
            try:
                child = _child_wait(worker, timeout=60)
                time.sleep(2)  # let the child finish its start-up before the first reading
                rss_ready = _proc_rss_kib(child)
                sender = Celery("bench", broker=REDIS_URL)
                # One connection, polled every 20 ms: the poll itself stays off the figures.
                audit = psycopg.connect(env["DATABASE_URL"], autocommit=True, connect_timeout=5)
                rss: list[int] = []
                cpu: list[float] = [proc_cpu_ms(child)]
                walls: list[float] = []
                for i in range(ticks):
                    claims = list(store.scan_iter(match=CLAIM_PATTERN, count=1000))
                    if claims:
                        store.delete(*claims)
                    sent = time.perf_counter()
                    sender.send_task(TASK_NAME, kwargs={"slot_start": time.time()})
                    deadline = time.monotonic() + TICK_TIMEOUT_SECONDS
                    while _audit_count(audit) < i + 1:
                        if time.monotonic() > deadline:
                            log = (tmp / "worker.log").read_text()[-2000:]
                            raise SystemExit(f"error: tick {i + 1} left no audit row:\n{log}")
                        time.sleep(0.02)
                    walls.append((time.perf_counter() - sent) * 1000)
                    if proc_children(worker.pid) != [child]:
                        raise SystemExit("error: the pool child was replaced during the run")
                    rss.append(_proc_rss_kib(child))
                    cpu.append(proc_cpu_ms(child))
                sender.close()
                records = _published_rows(audit)
                audit.close()
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(timeout=5)
    finally:
        store.flushdb()
        store.close()

    statuses = {status for status, _ in records}
    if statuses != {"published"} or len(records) != ticks:
        raise SystemExit(f"error: expected {ticks} published ticks, got {records[:5]}...")
    return WorkerFigures(
        ticks=ticks,
        rows=rows,
        waiting=waiting,
        rss_ready_mib=round(rss_ready / 1024, 1),
        rss_end_mib=round(rss[-1] / 1024, 1),
        rss_max_mib=round(max(rss) / 1024, 1),
        rss_after_first_mib=round(rss[0] / 1024, 1),
        cpu_first_tick_ms=round(cpu[1] - cpu[0], 1),
        cpu_per_tick_ms=round((cpu[-1] - cpu[1]) / max(1, ticks - 1), 2),
        tick_median_ms=round(statistics.median(d for _, d in records), 2),
        wall_median_ms=round(statistics.median(walls), 2),
    )


def main(argv: list[str] | None = None) -> int:
    args = fill_args_parse(argv, __doc__, "--ticks", default=100, least=2, waiting_least=0)
    figures = worker_ticks_measure(ticks=args.ticks, rows=args.rows, waiting=args.waiting)
    data: dict[str, Any] = asdict(figures)
    if args.json:
        print(json.dumps(data))
    else:
        for key, value in data.items():
            print(f"{key:<22} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
