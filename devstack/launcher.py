"""`make run`: web server, Celery worker and Celery beat in the foreground.

On embedded defaults nothing needs to be running: SQLite and a filesystem
broker under var/. When no AWS endpoint or credentials are configured, a local
AWS endpoint (moto's server) is started on 127.0.0.1:5000 with the SQS queue
and the Auto Scaling group created, and the app is pointed at it; the local
fleet (devstack.fleet: a stand-in for target tracking, and one video worker per
instance of the group) closes the loop there. Never against real AWS. Ctrl-C
stops everything, the video workers included.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3

from academy.celery import beat_argv, worker_argv
from devstack.localaws import (
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    local_aws_bootstrap,
    moto_server_start,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# The settings' rule (academy/settings.py): a second stack can live in another directory.
VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR") or BASE_DIR / "var")
# How long the stand-in job holds each video locally: long enough to watch work in progress.
LOCAL_HOLD_SECONDS = "20"


def _aws_configured() -> bool:
    """An endpoint, or credentials from the environment or a profile file.

    The EC2 metadata service is not asked: `make run` is for a workstation, and
    the question would leave the machine (production uses systemd, deploy/).
    """
    if os.environ.get("AWS_ENDPOINT_URL"):
        return True
    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        return boto3.session.Session().get_credentials() is not None
    finally:
        if previous is None:
            del os.environ["AWS_EC2_METADATA_DISABLED"]
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous


def _run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, check=True)


ENV_FILE = VAR_DIR / "devstack.env"
# What a second shell needs to reach the same stack (`make status`, `make demo` read it).
_SHARED_NAMES = (
    "ACADEMY_VAR_DIR",
    "DATABASE_URL",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    *LOCAL_CREDENTIALS,
    "SCALING_SQS_QUEUE_URL",
    "SCALING_PUBLISH_INTERVAL_SECONDS",
    "INTERNAL_API_KEY",
)


def _env_file_write(env: dict[str, str]) -> None:
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={env[name]}" for name in _SHARED_NAMES if env.get(name)]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)


def _admin_ensure(env: dict[str, str]) -> None:
    """A local login for the admin, created once; its password is kept under var/."""
    password_file = VAR_DIR / "admin-password.txt"
    if not password_file.exists():
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(secrets.token_urlsafe(12))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@localhost",
        ],
        cwd=BASE_DIR,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    print(f"Admin login: admin / the password in {password_file}")


def main() -> int:
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    local = not _aws_configured()
    if local:
        print("No AWS endpoint or credentials configured: starting a local one on 127.0.0.1:5000")
        env.update(LOCAL_CREDENTIALS)
        moto, endpoint = moto_server_start("127.0.0.1", 5000)
        children.append(moto)
        env["AWS_ENDPOINT_URL"] = endpoint
        env.setdefault("AWS_REGION", LOCAL_REGION)
        os.environ.update({k: env[k] for k in (*LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL")})
        created = local_aws_bootstrap(endpoint, region=env["AWS_REGION"])
        env.setdefault("SCALING_SQS_QUEUE_URL", created["queue_url"])
        # Ten-second slots so a newcomer sees values arrive quickly.
        env.setdefault("SCALING_PUBLISH_INTERVAL_SECONDS", "10")
        env.setdefault("VIDEO_WORKER_HOLD_SECONDS", LOCAL_HOLD_SECONDS)
    env.setdefault("INTERNAL_API_KEY", "local-" + secrets.token_hex(8))
    env.setdefault("WORKER_API_KEY", "local-worker-" + secrets.token_hex(8))
    env.setdefault("PYTHONUNBUFFERED", "1")

    _env_file_write(env)
    _run(["manage.py", "migrate", "--no-input", "-v", "0"], env)
    _admin_ensure(env)
    # (command, apart): on the local endpoint the fleet's video workers release their
    # videos at Ctrl-C, through the web server; so the fleet and the web server are kept
    # out of the terminal's Ctrl-C (a session of their own) and stopped below in order.
    commands = [
        ([sys.executable, "manage.py", "runserver", "127.0.0.1:8000", "--noreload"], local),
        ([sys.executable, *worker_argv("devstack-worker")], False),
        ([sys.executable, *beat_argv()], False),
    ]
    if local:
        # The stand-in for target tracking and one video worker per instance (moto only).
        commands.append(([sys.executable, "-m", "devstack.fleet"], True))
    for command, apart in commands:
        children.append(subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=apart))
    print("Admin: http://127.0.0.1:8000/admin/   In another shell: make status")
    if local:
        print("Put work in from another shell: make demo VIDEOS=20 (then watch make status)")
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        # The fleet first (its workers release their videos while the API answers).
        if local:
            _children_stop(children[-1:])
        _children_stop(children)
    return 0 if stopping else 1


def _children_stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    sys.exit(main())
