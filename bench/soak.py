"""`make soak`: the real stack under injected faults, then one table of what happened.

PostgreSQL, Redis, a moto server, gunicorn, a celery worker and celery beat
publish every 10 s for SOAK_MINUTES (default 10) while a seeded injector cuts
and restores the connections to PostgreSQL, Redis and the AWS endpoint --
refused, hanging and slow -- through TCP proxies on loopback that this script
starts. A second process loads the internal endpoint meanwhile. At the end the
datapoints are read back from the moto server and the audit rows from
PostgreSQL, and one table is printed. Exit 1 when duplicates, made-up zeros,
wrong values or lost audit rows are above 0, or when a slot whose path was
working did not publish.

    SOAK_MINUTES=10 make soak            # or: python -m bench.soak --minutes 10 --seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from academy.celery import beat_argv, worker_argv
from bench.common import (
    BASE_DIR,
    database_drop,
    database_migrate,
    database_recreate,
    database_url,
    verdict_table,
)
from devstack.faultproxy import Mode, TcpProxy
from devstack.localaws import (
    LOCAL_CREDENTIALS,
    local_aws_bootstrap,
    local_client,
    moto_server,
    port_free_get,
    port_wait,
)

REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/13")
SOAK_DB = os.environ.get("SOAK_DB_NAME", "academy_soak")  # its own database, dropped after
INTERVAL = 10
KEY = "soak-internal-key"
DB_BACKLOG = (3, 2)  # UPLOADED, PROCESSING: the database's truth is 5
SQS_DEPTH = 7  # the fallback's truth
PUBLISHED_RE = re.compile(r"BacklogCount metric published \| backlog=(\d+) source=(\w+) slot=(\S+)")
NOT_PUBLISHED_RE = re.compile(r"BacklogCount metric NOT published \| slot=(\S+)")
TARGETS = ("postgres", "redis", "aws")
MODES: tuple[Mode, ...] = ("refuse", "hang", "slow")


@dataclass
class Fault:
    target: str
    mode: Mode
    start: float  # epoch seconds
    end: float


@dataclass
class SoakReport:
    minutes: float
    seed: int
    slots: int = 0
    published_db: int = 0
    published_sqs: int = 0
    failed: int = 0
    duplicates: int = 0
    made_up_zeros: int = 0
    wrong_values: int = 0
    audit_rows_lost: int = 0
    longest_gap_seconds: int = 0
    missed_with_working_path: int = 0
    max_tick_ms: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    endpoint: dict[str, Any] = field(default_factory=dict)
    missed_slots: list[str] = field(default_factory=list)
    lost_slots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.made_up_zeros
            or self.wrong_values
            or self.audit_rows_lost
            or self.missed_with_working_path
        )

    def table(self) -> str:
        rows = [
            ("slots", self.slots),
            ("published from db", self.published_db),
            ("published from sqs", self.published_sqs),
            ("failed", self.failed),
            ("duplicates", self.duplicates),
            ("made-up zeros", self.made_up_zeros),
            ("wrong values", self.wrong_values),
            ("audit rows lost", self.audit_rows_lost),
            ("longest gap", f"{self.longest_gap_seconds} s"),
            ("missed with a working path", self.missed_with_working_path),
            ("slowest tick", f"{self.max_tick_ms:.0f} ms"),
            ("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))),
            (
                "endpoint load",
                f"{self.endpoint.get('requests', 0)} requests at "
                f"{self.endpoint.get('rate', 0)}/s, p50 {self.endpoint.get('p50_ms', 0)} ms, "
                f"p99 {self.endpoint.get('p99_ms', 0)} ms, errors {self.endpoint.get('errors', 0)}",
            ),
        ]
        title = f"soak: {self.minutes:g} min, {INTERVAL} s slots, seed {self.seed}"
        return verdict_table(title, rows, ok=self.ok)


def faults_plan(*, seed: int, start: float, end: float) -> list[Fault]:
    """Seeded, per target non-overlapping faults; the last 40 s are left clean."""
    rng = random.Random(seed)
    plan: list[Fault] = []
    for target in TARGETS:
        t = start + rng.uniform(5, 40)
        while True:
            duration = rng.uniform(5, 25)
            if t + duration > end - 40:
                break
            plan.append(Fault(target, rng.choice(MODES), t, t + duration))
            t += duration + rng.uniform(20, 70)
    return sorted(plan, key=lambda f: f.start)


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.running[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_all(self) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.running.clear()

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def soak_run(
    *,
    minutes: float,
    seed: int,
    load_rate: float = 200.0,
    keep: Path | None = None,
    redis_url: str = REDIS_URL,
) -> SoakReport:
    tmp = keep or Path(tempfile.mkdtemp(prefix="soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    report = SoakReport(minutes=minutes, seed=seed)
    processes = Processes(tmp)
    database_recreate(SOAK_DB)
    redis.Redis.from_url(redis_url).flushdb()
    try:
        with moto_server() as endpoint:
            _soak(
                report,
                tmp=tmp,
                endpoint=endpoint,
                processes=processes,
                load_rate=load_rate,
                redis_url=redis_url,
            )
    finally:
        processes.stop_all()
        with contextlib.suppress(psycopg.Error):
            database_drop(SOAK_DB)
        redis.Redis.from_url(redis_url).flushdb()
    return report


def _soak(
    report: SoakReport,
    *,
    tmp: Path,
    endpoint: str,
    processes: Processes,
    load_rate: float,
    redis_url: str,
) -> None:
    created = local_aws_bootstrap(endpoint)
    sqs = local_client("sqs", endpoint, created["region"])
    for i in range(SQS_DEPTH):
        sqs.send_message(QueueUrl=created["queue_url"], MessageBody=f"video-{i}")
    redis_match = re.match(r"redis://([^:/]+):(\d+)/", redis_url)
    if redis_match is None:
        raise SystemExit(f"error: SOAK_REDIS_URL {redis_url!r} must look like redis://host:port/db")
    redis_host, redis_port = redis_match.groups()
    moto_port = int(endpoint.rsplit(":", 1)[1])
    proxies = {
        "postgres": TcpProxy("127.0.0.1", 5432).start(),
        "redis": TcpProxy(redis_host, int(redis_port)).start(),
        "aws": TcpProxy("127.0.0.1", moto_port).start(),
    }
    redis_db = redis_url.rsplit("/", 1)[1]
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))},
        **LOCAL_CREDENTIALS,
        "AWS_REGION": created["region"],
        "SCALING_SQS_QUEUE_URL": created["queue_url"],
        "SCALING_PUBLISH_INTERVAL_SECONDS": str(INTERVAL),
        "ACADEMY_VAR_DIR": str(tmp / "var"),
        "INTERNAL_API_KEY": KEY,
        "DEBUG": "true",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    direct_env = {
        **base_env,
        "DATABASE_URL": database_url(SOAK_DB),
        "CELERY_BROKER_URL": redis_url,
        "SCALING_STATE_URL": redis_url,
        "AWS_ENDPOINT_URL": endpoint,
    }
    faulty_env = {
        **base_env,
        "DATABASE_URL": database_url(SOAK_DB).replace(":5432/", f":{proxies['postgres'].port}/"),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{proxies['redis'].port}/{redis_db}",
        "SCALING_STATE_URL": f"redis://127.0.0.1:{proxies['redis'].port}/{redis_db}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxies['aws'].port}",
    }
    try:
        database_migrate(direct_env)
        with psycopg.connect(database_url(SOAK_DB), autocommit=True) as conn:
            for status, n in (
                ("UPLOADED", DB_BACKLOG[0]),
                ("PROCESSING", DB_BACKLOG[1]),
                ("READY", 10),
            ):
                # PROCESSING rows hold a live lease (a worker busy for the whole soak):
                # the backlog must stay the truth the analysis expects, so lease
                # recovery has nothing to send back to the queue (its own tests cover it).
                conn.execute(
                    "INSERT INTO video_video (title, status, created_at, updated_at,"
                    " status_changed_at, lease_expires_at, lease_token, attempts)"
                    " SELECT 'Lecture ' || g, %s, now(), now(), now(),"
                    " CASE WHEN %s = 'PROCESSING' THEN now() + interval '1 day' END,"
                    " 'soak-' || g, %s FROM generate_series(1, %s) g",
                    (status, status, int(status == "PROCESSING"), n),
                )
        web_port = port_free_get()
        # The endpoint under load talks to PostgreSQL directly: the load must
        # compete with the publisher for CPU, not be cut by the injector.
        processes.start(
            "gunicorn",
            [
                "-m",
                "gunicorn",
                "academy.wsgi",
                "-b",
                f"127.0.0.1:{web_port}",
                "-w",
                "2",
                "--timeout",
                "10",
                "--log-level",
                "warning",
            ],
            direct_env,
        )
        processes.start("worker", worker_argv("soak-worker"), faulty_env)
        processes.start("beat", beat_argv(), faulty_env)
        port_wait("127.0.0.1", web_port)
        _first_publication_wait(timeout=6 * INTERVAL)

        now = time.time()
        start = now - now % INTERVAL + INTERVAL
        end = start + report.minutes * 60
        plan = faults_plan(seed=report.seed, start=start, end=end)
        for fault in plan:
            key = f"{fault.target} {fault.mode}"
            report.faults[key] = report.faults.get(key, 0) + 1
        time.sleep(max(0.0, start - time.time()))
        load_seconds = end - time.time()
        load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.load",
                "--url",
                f"http://127.0.0.1:{web_port}/api/v1/internal/video/backlog-count/",
                "--header",
                f"X-Internal-Key={KEY}",
                "--rate",
                str(load_rate),
                "--count",
                str(int(load_rate * load_seconds)),
                "--max-seconds",
                str(load_seconds),
            ],
            cwd=BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        _faults_inject(plan, proxies, end=end)
        load_out, _ = load.communicate(timeout=60)  # it stops itself at --max-seconds
        report.endpoint = json.loads(load_out.decode().strip().splitlines()[-1] or "{}")

        # Recovery: two clean slots, during which the worker drains the spool.
        time.sleep(2 * INTERVAL + INTERVAL / 2)
        processes.stop_all()
        # Anything still spooled (say, a record of the very last slot) is written now.
        drained = subprocess.run(
            [sys.executable, "manage.py", "publish_backlog", "--json"],
            cwd=BASE_DIR,
            env=direct_env,
            capture_output=True,
            text=True,
            check=False,
        )
        (tmp / "final-tick.json").write_text(drained.stdout + drained.stderr)
        _analyse(
            report,
            start=start,
            end=end,
            plan=plan,
            endpoint=endpoint,
            region=created["region"],
            worker_log=processes.log("worker"),
        )
        (tmp / "report.json").write_text(json.dumps(asdict(report), indent=2, default=str))
    finally:
        for proxy in proxies.values():
            proxy.stop()


def _first_publication_wait(*, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.Error), psycopg.connect(database_url(SOAK_DB)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM scaling_metricpublication WHERE status = 'published'"
            ).fetchone()
            if row and row[0] > 0:
                return
        time.sleep(1)
    raise RuntimeError(f"no publication within {timeout:g} s of starting the stack")


def _faults_inject(plan: list[Fault], proxies: dict[str, TcpProxy], *, end: float) -> None:
    events = sorted(
        [(f.start, f.target, f.mode) for f in plan] + [(f.end, f.target, "pass") for f in plan]
    )
    for at, target, mode in events:
        time.sleep(max(0.0, at - time.time()))
        proxies[target].set_mode(mode)
        print(f"soak: {datetime.now(UTC):%H:%M:%S} {target} -> {mode}", flush=True)
    time.sleep(max(0.0, end - time.time()))


def _slot_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _analyse(
    report: SoakReport,
    *,
    start: float,
    end: float,
    plan: list[Fault],
    endpoint: str,
    region: str,
    worker_log: str,
) -> None:
    slots = [start + i * INTERVAL for i in range(int((end - start) // INTERVAL))]
    report.slots = len(slots)
    cloudwatch = local_client("cloudwatch", endpoint, region)
    response = cloudwatch.get_metric_statistics(
        Namespace="Academy/VideoProcessing",
        MetricName="BacklogCount",
        Dimensions=[
            {"Name": "WorkerType", "Value": "Video"},
            {"Name": "AutoScalingGroupName", "Value": "academy-video-worker-asg"},
        ],
        StartTime=datetime.fromtimestamp(start - INTERVAL, tz=UTC),
        EndTime=datetime.fromtimestamp(end + INTERVAL, tz=UTC),
        Period=INTERVAL,
        Statistics=["Minimum", "Maximum", "SampleCount"],
    )
    points = {
        p["Timestamp"].timestamp(): p
        for p in response["Datapoints"]
        if start <= p["Timestamp"].timestamp() < end
    }
    truths = {float(sum(DB_BACKLOG)), float(SQS_DEPTH)}
    for p in points.values():
        report.duplicates += int(p["SampleCount"]) - 1
        if p["Minimum"] == 0:
            report.made_up_zeros += 1
        if p["Minimum"] not in truths or p["Maximum"] not in truths:
            report.wrong_values += 1

    with psycopg.connect(database_url(SOAK_DB)) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM slot_start), status, source, duration_ms"
            " FROM scaling_metricpublication WHERE slot_start >= %s AND slot_start < %s",
            (datetime.fromtimestamp(start, tz=UTC), datetime.fromtimestamp(end, tz=UTC)),
        ).fetchall()
    audit = {float(r[0]): r for r in rows}
    for _, status, source, duration in rows:
        if status == "published":
            if source == "db":
                report.published_db += 1
            else:
                report.published_sqs += 1
        else:
            report.failed += 1
        report.max_tick_ms = max(report.max_tick_ms, float(duration))

    ticked = set(points)
    for match in PUBLISHED_RE.finditer(worker_log):
        ticked.add(datetime.fromisoformat(match.group(3)).timestamp())
    for match in NOT_PUBLISHED_RE.finditer(worker_log):
        ticked.add(datetime.fromisoformat(match.group(1)).timestamp())
    lost = sorted(s for s in ticked if start <= s < end and s not in audit)
    report.audit_rows_lost = len(lost)
    report.lost_slots = [_slot_iso(s) for s in lost]

    gap = longest = 0
    for slot in slots:
        gap = 0 if slot in points else gap + 1
        longest = max(longest, gap)
    report.longest_gap_seconds = longest * INTERVAL

    def path_working(slot: float) -> bool:
        # Redis carries both the dispatch and the slot claim; AWS carries both
        # CloudWatch and the SQS fallback. A margin before the slot gives the
        # clients time to reconnect after a fault ends.
        for fault in plan:
            margin = 30 if fault.target == "redis" else 10
            if (
                fault.target in ("redis", "aws")
                and fault.start < slot + INTERVAL
                and fault.end > slot - margin
            ):
                return False
        return True

    missed = [s for s in slots if path_working(s) and s not in points]
    report.missed_with_working_path = len(missed)
    report.missed_slots = [_slot_iso(s) for s in missed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the publisher under injected faults.")
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10"))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", "20261126")))
    parser.add_argument("--load-rate", type=float, default=200.0)
    parser.add_argument("--keep", type=Path, help="keep logs and report.json in this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.minutes <= 120:
        parser.error("--minutes (SOAK_MINUTES) must be between 1 and 120")
    report = soak_run(
        minutes=args.minutes, seed=args.seed, load_rate=args.load_rate, keep=args.keep
    )
    print(json.dumps(asdict(report), default=str) if args.json else report.table())
    if report.missed_slots:
        print("missed slots: " + ", ".join(report.missed_slots))
    if report.lost_slots:
        print("lost audit slots: " + ", ".join(report.lost_slots))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
