"""Real processes for integration tests: celery worker and beat, gunicorn, manage.py commands.

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
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import redis
from django.db import connection

from academy.celery import beat_argv, worker_argv
from devstack.localaws import LOCAL_CREDENTIALS, port_free_get

BASE_DIR = Path(__file__).resolve().parents[2]
# Redis databases a test run may hold: 0 and 1 are the local stack's (docker-compose),
# 14 and 15 the shared fixtures' (tests/conftest.py, tests/integration/conftest.py).
REDIS_TEST_DATABASES = range(2, 14)
_REDIS_HOLD_KEY = "academy:test-run-holds-this-database"
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

    def _spawn(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        *,
        stdout_apart: bool = False,
    ) -> None:
        """Start ``python <args>``; output in <name>.log (stdout in <name>.out if apart)."""
        with contextlib.ExitStack() as files:
            log = files.enter_context((self.tmp / f"{name}.log").open("ab"))
            out = log
            if stdout_apart:
                out = files.enter_context((self.tmp / f"{name}.out").open("ab"))
            self.processes[name] = subprocess.Popen(
                [sys.executable, *args],
                cwd=BASE_DIR,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=log if stdout_apart else subprocess.STDOUT,
                start_new_session=True,
            )

    def fleets_set(self, fleets: list[dict[str, Any]]) -> None:
        """SCALING_FLEETS, as JSON in the environment, for the processes started after this."""
        self.env["SCALING_FLEETS"] = json.dumps(fleets)

    def worker_start(self, name: str = "worker") -> None:
        self._spawn(name, worker_argv(name))

    def beat_start(self, name: str = "beat") -> None:
        self._spawn(name, beat_argv())

    def gunicorn_start(self, name: str = "api", *, workers: int = 2, threads: int = 4) -> str:
        """gunicorn serving the app on a free loopback port; its base URL once Django answers."""
        port = port_free_get()
        args = ["-m", "gunicorn", "academy.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        args += ["--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "5"]
        self._spawn(name, [*args, "--access-logfile", "-"])
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if not self.alive(name):
                raise AssertionError(f"gunicorn {name} exited:\n{self.log(name)[-3000:]}")
            return http_answers(url + "/api/v1/internal/video/0/claim/")

        wait_for(answers, timeout=30, interval=0.2, what=f"gunicorn {name} on {url}")
        return url

    def video_worker_start(
        self,
        name: str,
        *,
        api_url: str,
        instance_id: str,
        hold_seconds: float | None = None,
        max_videos: int | None = None,
    ) -> None:
        """``manage.py video_worker --json``: log lines in <name>.log, the summary in <name>.out."""
        args = ["manage.py", "video_worker", "--instance-id", instance_id, "--api-url", api_url]
        if max_videos is not None:
            args += ["--max-videos", str(max_videos)]
        env = {} if hold_seconds is None else {"VIDEO_WORKER_HOLD_SECONDS": f"{hold_seconds:g}"}
        self._spawn(name, [*args, "--json"], env, stdout_apart=True)

    def send_signal(self, name: str, signum: signal.Signals) -> None:
        """Send ``signum`` to the process (and its group: nothing it started survives it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.processes[name].pid, signum)

    def wait_exit(self, name: str, *, timeout: float) -> int:
        return self.processes[name].wait(timeout=timeout)

    def stdout(self, name: str) -> str:
        path = self.tmp / f"{name}.out"
        return path.read_text(errors="replace") if path.exists() else ""

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


@contextlib.contextmanager
def redis_databases_held(
    base_url: str, count: int, *, ttl: int = 900, wait: float = 300.0
) -> Iterator[list[str]]:
    """URLs of ``count`` empty Redis databases that no other test run holds; emptied at the end.

    Engineers who share a machine share its Redis. With fixed database numbers one
    run's beat feeds another run's worker and one run's flush wipes another's slot
    claims. A database is held by a key set in it (NX, expiring in case the run
    dies); one that holds anything else is somebody's and is left alone. When fewer
    than ``count`` are free (parallel workers, other runs), what was held is let go
    and it tries again for up to ``wait`` seconds before failing.
    Raises ``redis.RedisError`` when Redis does not answer.
    """
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") >= 3 else base_url
    token = f"{os.getpid()}:{time.time()}".encode()
    deadline = time.monotonic() + wait
    held: list[tuple[str, redis.Redis]] = []
    try:
        while True:
            for number in REDIS_TEST_DATABASES:
                if len(held) == count:
                    break
                url = f"{root}/{number}"
                client = redis.Redis.from_url(url, socket_connect_timeout=2)
                if client.set(_REDIS_HOLD_KEY, token, nx=True, ex=ttl) and client.dbsize() == 1:
                    held.append((url, client))
                    continue
                if client.get(_REDIS_HOLD_KEY) == token:
                    client.delete(_REDIS_HOLD_KEY)
                client.close()
            if len(held) == count:
                break
            # Let go of a partial hold: two runs waiting on each other's halves never finish.
            for _, client in held:
                with contextlib.suppress(redis.RedisError):
                    if client.get(_REDIS_HOLD_KEY) == token:
                        client.delete(_REDIS_HOLD_KEY)
                client.close()
            held = []
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"fewer than {count} free Redis databases in 2..13 at {root} for {wait:g} s"
                )
            time.sleep(1.0)
        yield [url for url, _ in held]
    finally:
        for _, client in held:
            with contextlib.suppress(redis.RedisError):
                client.flushdb()
            client.close()


def datapoints(
    aws: dict[str, str],
    *,
    since: datetime,
    metric: str = "BacklogCount",
    period: int = 10,
    namespace: str = "Academy/VideoProcessing",
    dimensions: list[Any] | None = None,
) -> list[tuple[datetime, float, float]]:
    """(timestamp, maximum, sample count) for every period that has data, oldest first
    (the video fleet's metric unless ``namespace`` and ``dimensions`` name another)."""
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    response = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=DIMENSIONS if dimensions is None else dimensions,
        StartTime=since - timedelta(seconds=period),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=period,
        Statistics=["Maximum", "SampleCount"],
    )
    points = [(p["Timestamp"], p["Maximum"], p["SampleCount"]) for p in response["Datapoints"]]
    return sorted(points)


def http_answers(url: str) -> bool:
    """True once anything at ``url`` answers HTTP (any status), False while nothing listens."""
    try:
        urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 (a loopback URL of ours)
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


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
