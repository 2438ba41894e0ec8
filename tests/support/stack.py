"""Real processes for integration tests: celery worker and beat, manage.py commands.

Each process gets an environment built here: the test database (optionally
through a fault-injecting proxy), Redis databases of the test's own for the
broker and the publisher's state, and the moto server for AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from django.db import connection

from academy.celery import beat_argv, worker_argv
from devstack.localaws import LOCAL_CREDENTIALS

BASE_DIR = Path(__file__).resolve().parents[2]
DIMENSIONS: list[Any] = [
    {"Name": "WorkerType", "Value": "Video"},
    {"Name": "AutoScalingGroupName", "Value": "academy-video-worker-asg"},
]


def database_url(*, port: int | None = None) -> str:
    """The URL of the database the test runs on, optionally through another port."""
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{port or s.get('PORT') or 5432}/{s['NAME']}"


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def worker_start(self, name: str = "worker") -> None:
        self._spawn(name, worker_argv(name))

    def beat_start(self, name: str = "beat") -> None:
        self._spawn(name, beat_argv())

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def alive(self, name: str) -> bool:
        return self.processes[name].poll() is None

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def manage(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def stack_env(
    *, tmp: Path, db_url: str, broker_url: str, state_url: str, aws: dict[str, str], interval: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    env.update(LOCAL_CREDENTIALS)
    env.update(
        {
            "DATABASE_URL": db_url,
            "CELERY_BROKER_URL": broker_url,
            "SCALING_STATE_URL": state_url,
            "AWS_ENDPOINT_URL": aws["endpoint"],
            "AWS_REGION": aws["region"],
            "SCALING_SQS_QUEUE_URL": aws["queue_url"],
            "SCALING_PUBLISH_INTERVAL_SECONDS": str(interval),
            "ACADEMY_VAR_DIR": str(tmp / "var"),
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "true",
        }
    )
    env.pop("AWS_PROFILE", None)
    return env


def datapoints(
    aws: dict[str, str], *, since: datetime, metric: str = "BacklogCount", period: int = 10
) -> list[tuple[datetime, float, float]]:
    """(timestamp, maximum, sample count) for every period that has data, oldest first."""
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    response = cloudwatch.get_metric_statistics(
        Namespace="Academy/VideoProcessing",
        MetricName=metric,
        Dimensions=DIMENSIONS,
        StartTime=since - timedelta(seconds=period),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=period,
        Statistics=["Maximum", "SampleCount"],
    )
    points = [(p["Timestamp"], p["Maximum"], p["SampleCount"]) for p in response["Datapoints"]]
    return sorted(points)


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def slot_boundary_wait(interval: int, *, offset: float = 1.0) -> datetime:
    """Sleep until `offset` seconds into the next slot; return that slot's start."""
    now = time.time()
    start = now - now % interval + interval
    time.sleep(max(0.0, start + offset - now))
    return datetime.fromtimestamp(start, tz=UTC)


def json_last_line(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


@contextlib.contextmanager
def stack_running(stack: Stack) -> Iterator[Stack]:
    try:
        yield stack
    finally:
        stack.stop_all()
