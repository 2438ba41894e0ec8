"""The whole local loop for the soak, as bench/loop_vs_sim.py and the loop test start it,
with every role's path to PostgreSQL, Redis and the AWS endpoint through a fault proxy.

```
orchestrator (this process) -- direct --> PostgreSQL, moto (it watches and uploads)
api      gunicorn              pg-web proxy    redis proxy   aws proxy
worker   celery worker (tick)  pg-tick proxy   redis proxy   aws proxy
beat     celery beat           pg-tick proxy   redis proxy   aws proxy
control  devstack.controlplane direct          -             direct (it plays AWS)
fleet    devstack.fleet        pg-workers      redis proxy   direct; its video workers
                                                             reach SQS through the aws proxy
```
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from academy.celery import beat_argv, worker_argv
from bench.common import BASE_DIR, database_drop, database_migrate, database_recreate
from bench.soak import Processes
from bench.soak_loop.plan import SoakLoopConfig
from devstack.faultproxy import TcpProxy
from devstack.localaws import (
    LOCAL_CREDENTIALS,
    local_aws_bootstrap,
    moto_server,
    port_free_get,
    port_wait,
)

ASG = "academy-video-worker-asg"
INTERNAL_KEY = "soak-loop-internal-key-0123456789"
WORKER_KEY = "soak-loop-worker-key-0123456789ab"
PROXIED = ("pg-web", "pg-tick", "pg-workers", "redis", "aws")
# The key a test run (tests/support/stack.py) or a bench sets in a Redis database it holds.
HELD_KEY = "academy:test-run-holds-this-database"


def url_port_set(url: str, port: int) -> str:
    """``url`` with its port (and nothing else) changed."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit(":", 1)[0] if parts.port else parts.netloc
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


@contextlib.contextmanager
def redis_database_hold(base_url: str, *, seconds: float) -> Iterator[str]:
    """One empty Redis database on ``base_url``'s server nobody holds (13 down to 2), held
    with the test runs' NX key for ``seconds``; emptied at the end."""
    root = base_url.rsplit("/", 1)[0] if base_url.count("/") >= 3 else base_url.rstrip("/")
    token = f"soak-loop:{os.getpid()}:{time.time()}"
    for number in range(13, 1, -1):
        client = redis.Redis.from_url(f"{root}/{number}", socket_connect_timeout=2)
        taken = client.set(HELD_KEY, token, nx=True, ex=int(seconds))
        if taken and client.dbsize() == 1:
            break
        if taken:  # it holds somebody's keys: leave it as it was
            client.delete(HELD_KEY)
        client.close()
    else:
        raise RuntimeError(f"no free Redis database in 2..13 at {root}: try again later")
    try:
        yield f"{root}/{number}"
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


@dataclass
class LoopStack:
    config: SoakLoopConfig
    tmp: Path
    processes: Processes
    proxies: dict[str, TcpProxy]
    direct_env: dict[str, str]
    endpoint: str
    region: str
    queue_url: str
    api_url: str
    timeline: Path

    def pid(self, name: str) -> int:
        return self.processes.running[name].pid

    def alive(self, name: str) -> bool:
        return self.processes.running[name].poll() is None

    def log(self, name: str) -> str:
        return self.processes.log(name)

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.direct_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Every fault undone, then every process stopped (the fleet first: its workers
        release through the API)."""
        for proxy in self.proxies.values():
            with contextlib.suppress(OSError, RuntimeError):
                proxy.set_mode("pass")
        if "api" in self.processes.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid("api"), signal.SIGCONT)
        fleet = self.processes.running.get("fleet")
        if fleet is not None and fleet.poll() is None:
            fleet.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                fleet.wait(timeout=15)
        self.processes.stop_all()


def _env(config: SoakLoopConfig, tmp: Path, *, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    env.pop("AWS_PROFILE", None)
    env.update(LOCAL_CREDENTIALS)
    env.update(
        {
            "AWS_EC2_METADATA_DISABLED": "true",
            "SCALING_PUBLISH_INTERVAL_SECONDS": str(config.interval),
            "ACADEMY_VAR_DIR": str(tmp / "var"),
            "INTERNAL_API_KEY": INTERNAL_KEY,
            "WORKER_API_KEY": WORKER_KEY,
            "VIDEO_LEASE_SECONDS": str(config.lease),
            "VIDEO_MAX_ATTEMPTS": str(config.max_attempts),
            "VIDEO_WORKER_HOLD_SECONDS": str(config.hold),
            "DEVSTACK_BOOT_SECONDS": str(config.boot),
            "DEVSTACK_TIMELINE_FILE": str(tmp / "timeline.jsonl"),
            "DEVSTACK_SCALE_IN_DATAPOINTS": str(config.scale_in_datapoints),
            "DEVSTACK_API_URL": api_url,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "true",
        }
    )
    return env


@contextlib.contextmanager
def loop_stack(
    config: SoakLoopConfig,
    *,
    tmp: Path,
    database_url: str,
    redis_url: str,
    create_database: str | None = None,
) -> Iterator[LoopStack]:
    """The loop running (policy installed, control plane playing it); everything stopped,
    the proxies closed and a created database dropped at the end, whatever happened."""
    if create_database is not None:
        database_recreate(create_database)
    processes = Processes(tmp)
    proxies: dict[str, TcpProxy] = {}
    stack: LoopStack | None = None
    try:
        with moto_server() as endpoint:
            created = local_aws_bootstrap(endpoint)
            db = urlsplit(database_url)
            rd = urlsplit(redis_url)
            moto_port = int(endpoint.rsplit(":", 1)[1])
            targets = {
                "pg-web": (db.hostname or "127.0.0.1", db.port or 5432),
                "pg-tick": (db.hostname or "127.0.0.1", db.port or 5432),
                "pg-workers": (db.hostname or "127.0.0.1", db.port or 5432),
                "redis": (rd.hostname or "127.0.0.1", rd.port or 6379),
                "aws": ("127.0.0.1", moto_port),
            }
            for name, (host, port) in targets.items():
                proxies[name] = TcpProxy(host, port).start()
            api_port = port_free_get()
            api_url = f"http://127.0.0.1:{api_port}"
            base = {
                **_env(config, tmp, api_url=api_url),
                "AWS_REGION": created["region"],
                "SCALING_SQS_QUEUE_URL": created["queue_url"],
            }
            direct = {
                **base,
                "DATABASE_URL": database_url,
                "CELERY_BROKER_URL": redis_url,
                "SCALING_STATE_URL": redis_url,
                "AWS_ENDPOINT_URL": endpoint,
            }

            def through(pg: str, *, aws: bool = True) -> dict[str, str]:
                via_redis = url_port_set(redis_url, proxies["redis"].port)
                aws_proxy = f"http://127.0.0.1:{proxies['aws'].port}"
                return {
                    **base,
                    "DATABASE_URL": url_port_set(database_url, proxies[pg].port),
                    "CELERY_BROKER_URL": via_redis,
                    "SCALING_STATE_URL": via_redis,
                    "AWS_ENDPOINT_URL": aws_proxy if aws else endpoint,
                    "DEVSTACK_WORKER_AWS_ENDPOINT_URL": aws_proxy,
                }

            stack = LoopStack(
                config=config,
                tmp=tmp,
                processes=processes,
                proxies=proxies,
                direct_env=direct,
                endpoint=endpoint,
                region=created["region"],
                queue_url=created["queue_url"],
                api_url=api_url,
                timeline=tmp / "timeline.jsonl",
            )
            database_migrate(direct)  # on an existing database: the beat entry realigned
            installed = stack.manage(
                "install_scaling_policy",
                "--target-value",
                f"{config.target:g}",
                "--warmup",
                str(config.warmup),
            )
            if installed.returncode != 0:
                raise RuntimeError(f"install_scaling_policy failed: {installed.stderr[-2000:]}")
            gunicorn = [
                "-m",
                "gunicorn",
                "academy.wsgi:application",
                "--bind",
                f"127.0.0.1:{api_port}",
            ]
            gunicorn += ["--workers", "2", "--threads", "4", "--graceful-timeout", "5"]
            processes.start("api", gunicorn, through("pg-web"))
            processes.start("worker", worker_argv("soak-loop-worker"), through("pg-tick"))
            processes.start("beat", beat_argv(), through("pg-tick"))
            port_wait("127.0.0.1", api_port, timeout=30)
            processes.start("control", ["-m", "devstack.controlplane"], direct)
            processes.start("fleet", ["-m", "devstack.fleet"], through("pg-workers", aws=False))
            _wait(
                lambda: "playing academy-backlog-target-tracking" in processes.log("control"),
                seconds=4 * config.interval,
                what="the control plane to read the installed policy",
                stack=stack,
            )
            yield stack
    finally:
        if stack is not None:
            stack.stop()
        processes.stop_all()
        for proxy in proxies.values():
            proxy.stop()
        if create_database is not None:
            with contextlib.suppress(psycopg.Error):
                database_drop(create_database)


def _wait(condition: object, *, seconds: float, what: str, stack: LoopStack) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        for name in stack.processes.running:
            if not stack.alive(name):
                raise RuntimeError(f"{name} exited at start:\n{stack.log(name)[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"timed out after {seconds:g} s waiting for {what}")
