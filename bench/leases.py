"""Benchmark: what video leases cost -- a renewal, the recovery query, the worker API.

One PostgreSQL database of its own (``academy_bench_leases``, made afresh,
migrated, filled, dropped at the end) holds ``--rows`` videos: ``--uploaded``
UPLOADED, ``--live`` PROCESSING with a live lease (expiring in about an hour, so
none runs out during the run), ``--expired`` PROCESSING whose lease ran out 1-60
s ago and ``--missing`` PROCESSING without a lease, all spread through the table
at random; the rest READY. Then, with ``VIDEO_LEASE_SECONDS`` 120:

1. renew: ``video.services.video_lease_renew`` in this process (one UPDATE by
   primary key, one read-back; autocommit, so each UPDATE commits), ``--runs``
   times after 10 warm-up runs, and the EXPLAIN (ANALYZE, BUFFERS) of its UPDATE
   (in a transaction rolled back);
2. recovery: EXPLAIN (ANALYZE, BUFFERS) and timing of
   ``videos_lease_expired_qs()`` and ``videos_lease_missing_qs()`` with
   ``video_lease_expiry_idx``, after dropping it, and after dropping
   ``video_backlog_idx`` as well (the index is made again afterwards);
3. the worker API: gunicorn with one sync worker on a free loopback port
   (``DEBUG=false``, ``WORKER_API_KEY`` set), ``--claims`` videos claimed
   through ``POST .../claim/``, then a load process of its own renews them
   through ``video.worker.client.WorkerApiClient`` (one connection per request,
   no keep-alive, as the reference worker does): one thread for ``--seconds``
   (a renewal's latency), ``--threads`` threads back to back (the worker's
   capacity), then half that capacity at a steady rate (the latency at the
   load we size for). Workers served = capacity x the renew period (40 s) /
   ``SAFETY_FACTOR``.

Not a test: ``make bench`` runs it (``bench/run_all.py``), ``make test`` never does.

    python -m bench.leases [--rows 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench import backlog_query
from bench.common import (
    BASE_DIR,
    database_drop,
    database_recreate,
    percentile,
    proc_children,
    proc_cpu_ms,
    videos_fill,
)
from devstack.localaws import port_free_get, port_wait

BENCH_DB = "academy_bench_leases"
LEASE_INDEX = "video_lease_expiry_idx"
BACKLOG_INDEX = "video_backlog_idx"
LEASE_SECONDS = 120  # the default VIDEO_LEASE_SECONDS; workers renew every third of it
RENEW_PERIOD_SECONDS = LEASE_SECONDS // 3
# Size for half the measured capacity: renewals are not spread evenly (a scale-out
# starts many workers at once, and their timers stay in step), and a sync worker
# at saturation queues every request behind the others.
SAFETY_FACTOR = 2
WARMUP_SECONDS = 2.0


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def plan_summary(document: list[dict[str, Any]]) -> dict[str, Any]:
    """The scan of video_video, its rows and the plan's buffers, from EXPLAIN (FORMAT JSON)."""
    top = document[0]
    scan = next(
        (
            n
            for n in _plan_nodes(top["Plan"])
            if n.get("Relation Name") == "video_video" and n["Node Type"] != "ModifyTable"
        ),
        top["Plan"],
    )
    # A Bitmap Heap Scan names its index on the Bitmap Index Scan below it.
    indexes = [n["Index Name"] for n in _plan_nodes(scan) if n.get("Index Name")]
    return {
        "scan": " ".join([scan["Node Type"], *indexes]),
        "scan_rows": scan.get("Actual Rows"),
        "shared_hit": top["Plan"].get("Shared Hit Blocks", 0),
        "shared_read": top["Plan"].get("Shared Read Blocks", 0),
        "execution_ms": top.get("Execution Time"),
    }


def timed(call: Callable[[], object], *, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(timings), 3),
        "p95_ms": round(percentile(timings, 0.95), 3),
    }


def leases_fill(db_url: str, args: argparse.Namespace) -> None:
    """``videos_fill``, then ``--live + --expired + --missing`` random READY rows PROCESSING."""
    videos_fill(db_url, rows=args.rows, waiting=args.uploaded)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """
            WITH picked AS (
                SELECT id, row_number() OVER (ORDER BY md5(id::text)) AS r
                FROM video_video WHERE status = 'READY'
                ORDER BY md5(id::text) LIMIT %(live)s + %(expired)s + %(missing)s
            )
            UPDATE video_video AS v SET
                status = 'PROCESSING',
                status_changed_at = now() - interval '10 minutes',
                processing_started_at = now() - interval '10 minutes',
                attempts = 1,
                lease_token = CASE WHEN p.r <= %(missing)s THEN '' ELSE md5(v.id::text) END,
                lease_instance_id = CASE WHEN p.r <= %(missing)s THEN ''
                                    ELSE 'i-bench' || (p.r %% 20) END,
                lease_worker_id = CASE WHEN p.r <= %(missing)s THEN '' ELSE 'w' || p.r END,
                lease_expires_at = CASE
                    WHEN p.r <= %(missing)s THEN NULL
                    WHEN p.r <= %(missing)s + %(expired)s
                        THEN now() - (1 + p.r %% 60) * interval '1 second'
                    ELSE now() + interval '1 hour' - (p.r %% 80) * interval '1 second'
                END
            FROM picked AS p WHERE v.id = p.id
            """,
            {"live": args.live, "expired": args.expired, "missing": args.missing},
        )
        conn.execute("VACUUM (ANALYZE) video_video")
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE lease_expires_at > now()),
                      count(*) FILTER (WHERE lease_expires_at <= now()),
                      count(*) FILTER (WHERE lease_expires_at IS NULL)
               FROM video_video WHERE status = 'PROCESSING'"""
        ).fetchone()
    if row != (args.live, args.expired, args.missing):
        raise SystemExit(f"error: the fill made (live, expired, missing) = {row}")


def renew_measure(*, runs: int) -> dict[str, Any]:
    """Part 1, in this process: claim one UPLOADED video, renew it ``runs`` times."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from video import services
    from video.models import Video, VideoStatus

    video_id = Video.objects.filter(status=VideoStatus.UPLOADED).values_list("pk", flat=True)[0]
    lease = services.video_claim(video_id=video_id, instance_id="i-bench", worker_id="bench")
    if not isinstance(lease, services.Lease):
        raise SystemExit(f"error: the claim of video {video_id} was refused: {lease}")

    def renew() -> None:
        if not services.video_lease_renew(video_id=video_id, token=lease.token).ok:
            raise SystemExit(f"error: the renewal of video {video_id} failed")

    with CaptureQueriesContext(connection) as captured:
        renew()
    (update_sql,) = [q["sql"] for q in captured if q["sql"].startswith("UPDATE")]
    explained = {}
    for fmt in ("TEXT", "JSON"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT {fmt}) {update_sql}")
            explained[fmt] = [r[0] for r in cursor.fetchall()]
            transaction.set_rollback(True)
    return {
        "runs": runs,
        "queries": len(captured),
        **timed(renew, runs=runs, warmup=10),
        **plan_summary(explained["JSON"][0]),
        "sql": update_sql,
        "explain": "\n".join(explained["TEXT"]),
    }


def _listing(queryset_get: Callable[[], Any]) -> Callable[[], object]:
    return lambda: list(queryset_get())


def recovery_measure(args: argparse.Namespace, *, dropped: tuple[str, ...]) -> list[dict[str, Any]]:
    """Part 2 for one state of the indexes: both recovery queries, planned and timed."""
    from video.selectors import videos_lease_expired_qs, videos_lease_missing_qs

    results = []
    for name, queryset_get, expected in (
        ("expired", videos_lease_expired_qs, args.expired),
        ("missing", videos_lease_missing_qs, args.missing),
    ):
        found = len(list(queryset_get()))
        if found != min(expected, 500):
            raise SystemExit(f"error: {name}: expected {expected} videos, found {found}")
        document = json.loads(queryset_get().explain(format="json", analyze=True, buffers=True))
        results.append(
            {
                "query": name,
                "dropped": list(dropped),
                "found": found,
                **timed(_listing(queryset_get), runs=args.query_runs, warmup=5),
                **plan_summary(document),
                "explain": queryset_get().explain(analyze=True, buffers=True),
            }
        )
    return results


@contextmanager
def gunicorn_running(db_url: str, tmp: Path, key: str) -> Iterator[tuple[str, int]]:
    """gunicorn with one sync worker on the bench database: its URL and the worker's pid."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "WORKER_API_KEY": key,
        "VIDEO_LEASE_SECONDS": str(LEASE_SECONDS),
        "ACADEMY_VAR_DIR": str(tmp / "var"),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("SCALING_SQS_QUEUE_URL", None)  # no job messages: claims and renewals send none
    port = port_free_get()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "academy.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", "1", "-k", "sync", "--log-level", "warning"],
        cwd=BASE_DIR,
        env=env,
    )  # fmt: skip
    try:
        port_wait("127.0.0.1", port)
        deadline = time.monotonic() + 20
        while not (children := proc_children(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if len(children) != 1:
            raise SystemExit(f"error: gunicorn has {len(children)} workers, not 1")
        yield f"http://127.0.0.1:{port}", children[0]
    finally:
        server.terminate()
        server.wait(timeout=10)


def api_measure(db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: claims through the API, then renewals from a load process."""
    from video.models import Video, VideoStatus
    from video.worker.client import Lease, WorkerApiClient

    key = secrets.token_urlsafe(32)
    tmp = Path(tempfile.mkdtemp(prefix="bench-leases-"))
    ids = list(
        Video.objects.filter(status=VideoStatus.UPLOADED)
        .order_by("pk")
        .values_list("pk", flat=True)[: args.claims]
    )
    with gunicorn_running(db_url, tmp, key) as (url, worker_pid):
        client = WorkerApiClient(url, key)
        leases: list[list[Any]] = []
        claim_ms: list[float] = []
        for video_id in ids:
            started = time.perf_counter()
            lease = client.claim(video_id, instance_id="i-bench", worker_id=f"w{video_id}")
            claim_ms.append((time.perf_counter() - started) * 1000)
            if not isinstance(lease, Lease):
                raise SystemExit(f"error: the claim of video {video_id} was refused: {lease}")
            leases.append([video_id, lease.token])
        phases: list[dict[str, Any]] = []
        closed_loop = {"threads": args.threads, "seconds": args.seconds, "rate": None}
        for phase in ({"threads": 1, "seconds": args.seconds, "rate": None}, closed_loop, None):
            if phase is None:  # half the capacity just measured, at a steady rate
                rate = round(phases[1]["requests_per_s"] / SAFETY_FACTOR, 1)
                phase = {"threads": args.threads * 2, "seconds": args.seconds, "rate": rate}
            cpu_before = proc_cpu_ms(worker_pid)
            spec = {"url": url, "key": key, "leases": leases, **phase}
            done = subprocess.run(
                [sys.executable, "-m", "bench.leases", "--drive"],
                cwd=BASE_DIR,
                input=json.dumps(spec),
                stdout=subprocess.PIPE,
                text=True,
                check=True,
                timeout=args.seconds + 120,
            )
            result = {**phase, **json.loads(done.stdout)}
            cpu_ms = proc_cpu_ms(worker_pid) - cpu_before
            result["worker_cpu_ms_per_request"] = round(cpu_ms / max(1, result["total"]), 2)
            if result["errors"]:
                raise SystemExit(f"error: renewals failed: {result['errors']}")
            phases.append(result)
    capacity = phases[1]["requests_per_s"]
    return {
        # Each request opens a PostgreSQL connection of its own (CONN_MAX_AGE is 0).
        "pg_connect": timed(lambda: psycopg.connect(db_url).close(), runs=50, warmup=5),
        "claims": len(leases),
        "claim_median_ms": round(statistics.median(claim_ms), 2),
        "phases": phases,
        "renew_period_s": RENEW_PERIOD_SECONDS,
        "safety_factor": SAFETY_FACTOR,
        "workers_at_capacity": round(capacity * RENEW_PERIOD_SECONDS),
        "workers_served": round(capacity * RENEW_PERIOD_SECONDS / SAFETY_FACTOR),
    }


def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """The load process: renew ``spec["leases"]`` from threads; latencies after a warm-up."""
    from video.worker.client import WorkerApiClient, WorkerApiError

    client = WorkerApiClient(spec["url"], spec["key"])
    threads, rate = int(spec["threads"]), spec["rate"]
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    total = 0
    started = time.monotonic()
    measure_from = started + WARMUP_SECONDS
    stop_at = measure_from + float(spec["seconds"])
    sent = 0

    def due_next() -> float:  # open loop: the next send time on a steady schedule
        nonlocal sent
        with lock:
            sent += 1
            return started + (sent - 1) / rate

    def worker(mine: list[list[Any]]) -> None:
        nonlocal total
        i = 0
        while True:
            if rate is not None and (delay := due_next() - time.monotonic()) > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            if t0 >= stop_at:
                return
            video_id, token = mine[i % len(mine)]
            i += 1
            try:
                client.renew(video_id, token=token)
                failure = None
            except WorkerApiError as exc:
                failure = type(exc).__name__
            elapsed_ms = (time.monotonic() - t0) * 1000
            with lock:
                total += 1
                if failure:
                    errors[failure] = errors.get(failure, 0) + 1
                if t0 >= measure_from:
                    latencies.append(elapsed_ms)

    leases = spec["leases"]
    pool = [
        threading.Thread(target=worker, args=(leases[t::threads] or leases,))
        for t in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return {
        "total": total,
        "measured": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / float(spec["seconds"]), 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def args_parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=1_000, help="PROCESSING, live lease")
    parser.add_argument("--expired", type=int, default=50, help="PROCESSING, lease ran out")
    parser.add_argument("--missing", type=int, default=5, help="PROCESSING, no lease")
    parser.add_argument("--uploaded", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=500, help="in-process renewals")
    parser.add_argument("--query-runs", type=int, default=50, help="runs per recovery query")
    parser.add_argument("--claims", type=int, default=200, help="leases the load renews")
    parser.add_argument("--threads", type=int, default=4, help="load threads at capacity")
    parser.add_argument("--seconds", type=float, default=20.0, help="per load phase")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    processing = args.live + args.expired + args.missing
    if (
        min(args.runs, args.query_runs, args.claims, args.threads, args.expired, args.missing) < 1
        or args.seconds < 1
        or args.rows < processing + args.uploaded
        or args.uploaded < args.claims + 1
    ):
        parser.error(
            "--runs, --query-runs, --claims, --threads, --expired, --missing and --seconds "
            "must be 1 or more, --uploaded above --claims, and --rows at least the "
            "PROCESSING and UPLOADED videos together"
        )
    return args


def measure(args: argparse.Namespace) -> dict[str, Any]:
    db_url = database_recreate(BENCH_DB)
    os.environ["VIDEO_LEASE_SECONDS"] = str(LEASE_SECONDS)
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.pop("SCALING_SQS_QUEUE_URL", None)
    backlog_query.django_setup(db_url)  # DEBUG off, migrated, no statement timeout
    from django.db import connection

    try:
        started = time.perf_counter()
        leases_fill(db_url, args)
        fill_s = round(time.perf_counter() - started, 1)
        print(f"leases: filled {args.rows:,} videos in {fill_s} s", file=sys.stderr, flush=True)
        recovery = recovery_measure(args, dropped=())
        backlog_query.index_drop(LEASE_INDEX)
        recovery += recovery_measure(args, dropped=(LEASE_INDEX,))
        backlog_query.index_drop(BACKLOG_INDEX)
        recovery += recovery_measure(args, dropped=(LEASE_INDEX, BACKLOG_INDEX))
        backlog_query.index_ensure(BACKLOG_INDEX)
        backlog_query.index_ensure(LEASE_INDEX)
        renew = renew_measure(runs=args.runs)
        connection.close()
        api = api_measure(db_url, args)
    finally:
        connection.close()
        database_drop(BENCH_DB)
    counts = {"live": args.live, "expired": args.expired, "missing": args.missing}
    return {"rows": args.rows, **counts, "fill_seconds": fill_s,
            "renew": renew, "recovery": recovery, "api": api}  # fmt: skip


def report_print(data: dict[str, Any]) -> None:
    renew, api = data["renew"], data["api"]
    print(
        f"{data['rows']:,} videos; PROCESSING: {data['live']:,} live leases, "
        f"{data['expired']} expired, {data['missing']} without a lease\n"
    )
    print(f"1. video_lease_renew ({renew['queries']} queries), {renew['runs']} runs: "
          f"median {renew['median_ms']} ms, p95 {renew['p95_ms']} ms")  # fmt: skip
    print(f"   {renew['sql']}\n{renew['explain']}\n")
    print("2. recovery queries\n")
    print("| query | indexes dropped | rows | median ms | p95 ms | scan | buffers |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in data["recovery"]:
        print(
            f"| {r['query']} | {', '.join(r['dropped']) or '-'} | {r['found']} "
            f"| {r['median_ms']} | {r['p95_ms']} | {r['scan']} "
            f"| {r['shared_hit'] + r['shared_read']} |"
        )
    for r in data["recovery"]:
        print(f"\n{r['query']}, dropped: {', '.join(r['dropped']) or '-'}\n{r['explain']}")
    print(f"\n3. worker API, gunicorn 1 sync worker, {api['claims']} leases "
          f"(claim median {api['claim_median_ms']} ms; a PostgreSQL connection: median "
          f"{api['pg_connect']['median_ms']} ms)\n")  # fmt: skip
    print("| load | threads | requests/s | p50 ms | p99 ms | worker CPU ms/request |")
    print("|---|---:|---:|---:|---:|---:|")
    for p in api["phases"]:
        load = "closed loop" if p["rate"] is None else f"steady {p['rate']}/s"
        print(
            f"| {load} | {p['threads']} | {p['requests_per_s']} | {p['p50_ms']} "
            f"| {p['p99_ms']} | {p['worker_cpu_ms_per_request']} |"
        )
    print(
        f"\nworkers served at a {api['renew_period_s']} s renew period: "
        f"{api['workers_at_capacity']:,} at capacity, {api['workers_served']:,} "
        f"with a safety factor of {api['safety_factor']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = args_parse(argv)
    if args.drive:
        print(json.dumps(drive(json.load(sys.stdin))))
        return 0
    data = measure(args)
    if args.json:
        print(json.dumps(data))
    else:
        report_print(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
