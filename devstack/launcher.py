"""`make run`: the whole stack in the foreground, each line named by its process.

On embedded defaults nothing needs to be running: SQLite and a filesystem
broker under var/. When no AWS endpoint or credentials are configured, a local
AWS endpoint (moto's server, the ``aws`` process) is started on 127.0.0.1:5000
with the SQS queue and the Auto Scaling group created, the default scaling
policy is installed on that group with flags fitted to the local ten-second
slots, and the app is pointed at it; the control plane (``devstack.controlplane``:
target tracking's stand-in) and the fleet (``devstack.fleet``: one video worker per
booted instance) close the loop there. Never against real AWS.

Two fleets by default (``DEVSTACK_FLEETS``, [video,ai]): beside the video group, an
SQS-measured ``ai`` fleet, its own group (academy-ai-worker-asg) and queue
(academy-ai-jobs), metric BacklogCount in Academy/Workers with WorkerType AI and no
leases; a stand-in consumer (``devstack.consumer``) per booted instance. Every process
gets both in ``SCALING_FLEETS``; ``install_scaling_policy --all`` installs both
policies. ``DEVSTACK_FLEETS=video``: the video group alone, SCALING_FLEETS unset, as a
single-fleet deployment.

The processes run under honcho (``devstack.processes``): web, worker, beat, and
on the local endpoint aws, control and fleet. Ctrl-C stops everything, the fleet
first (its workers release their videos through web), aws last.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

from academy import defaults
from devstack.localaws import LOCAL_CREDENTIALS, LOCAL_REGION, local_aws_bootstrap, port_wait
from devstack.localfleets import (
    AI_ASG_NAME,
    AI_FLEET,
    AI_NAMESPACE,
    AI_QUEUE_NAME,
    AI_WORKER_TYPE,
    LOCAL_CONSUMER_HOLD_SECONDS,
    FleetsError,
    devstack_fleets_get,
    fleets_policy_install,
)
from devstack.localgroup import BootSecondsError, boot_seconds_get
from devstack.processes import (
    AWS_HOST,
    AWS_PORT,
    WEB_HOST,
    WEB_PORT,
    StackManager,
    StackProcess,
    stack_processes,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# The settings' rule (academy/settings.py): a second stack can live in another directory.
VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR") or BASE_DIR / "var")
ENV_FILE = VAR_DIR / "devstack.env"
# How long the stand-in job holds each video locally: long enough to watch work in progress.
LOCAL_HOLD_SECONDS = "20"
# Ten-second slots so a newcomer sees values arrive quickly.
LOCAL_INTERVAL_SECONDS = "10"
# The local policy: a video may wait a minute; the stand-in job's hold is the processing
# time, so the target (wait / time) is 3 videos per instance at the default hold of 20 s.
LOCAL_ACCEPTABLE_WAIT_SECONDS = 60
LOCAL_TARGET_VALUE = "3"
# Once the web server answers, this long for the Celery banners to pass first.
ANNOUNCE_AFTER_SECONDS = 3.0
# What a second shell needs to reach the same stack (`make status`, `make burst`, `make demo`).
_SHARED_NAMES = (
    "ACADEMY_VAR_DIR",
    "DATABASE_URL",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    *LOCAL_CREDENTIALS,
    "SCALING_SQS_QUEUE_URL",
    "SCALING_PUBLISH_INTERVAL_SECONDS",
    "SCALING_FLEETS",
    "INTERNAL_API_KEY",
)
# A value the shell reads as it is; any other is written single-quoted (SCALING_FLEETS' JSON).
_SHELL_SAFE = re.compile(r"[\w@%+=:,./-]*")


class SetupError(Exception):
    """A step before the processes start failed: one line, `make run` exits non-zero."""


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


def _port_check(host: str, port: int, what: str) -> None:
    with socket.socket() as sock:
        # As the servers themselves bind: a port left in TIME_WAIT by the last run is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise SetupError(
                f"{host}:{port} is in use, and {what} needs it: is another `make run` still "
                "running? Stop it first."
            ) from None


def _whole(raw: str | None) -> int | None:
    return int(raw) if raw is not None and raw.strip().isdigit() else None


def policy_argv(env: dict[str, str], *, boot_seconds: int) -> list[str]:
    """`manage.py install_scaling_policy` with flags fitted to the local slots.

    --warmup (EstimatedInstanceWarmup) is the boot delay plus one slot: a local instance
    counts in service DEVSTACK_BOOT_SECONDS after launch, and its work shows in the
    backlog published at the next slot; until then target tracking should not add
    more instances for the same videos. The default 60 s would hold the local loop
    back for six slots. The target is derived from the stand-in job's hold time.
    """
    interval = _whole(env.get("SCALING_PUBLISH_INTERVAL_SECONDS")) or int(LOCAL_INTERVAL_SECONDS)
    argv = ["manage.py", "install_scaling_policy", "--warmup", str(boot_seconds + interval)]
    hold = _whole(env.get("VIDEO_WORKER_HOLD_SECONDS"))
    if hold:
        argv += [
            "--acceptable-wait",
            str(LOCAL_ACCEPTABLE_WAIT_SECONDS),
            "--processing-time",
            str(hold),
        ]
    else:  # a hold of 0 gives no processing time to divide by
        argv += ["--target-value", LOCAL_TARGET_VALUE]
    return argv


def fleet_policy(env: dict[str, str], *, hold: int | None, boot_seconds: int) -> dict[str, int]:
    """A local fleet's policy defaults (SCALING_FLEETS' ``policy``), as policy_argv's flags:
    the warmup is the boot plus one slot; the target is the acceptable wait over the hold."""
    interval = _whole(env.get("SCALING_PUBLISH_INTERVAL_SECONDS")) or int(LOCAL_INTERVAL_SECONDS)
    policy = {"warmup": boot_seconds + interval}
    if hold:
        policy |= {"acceptable_wait": LOCAL_ACCEPTABLE_WAIT_SECONDS, "processing_time": hold}
    else:  # a hold of 0 gives no processing time to divide by
        policy["target_value"] = int(LOCAL_TARGET_VALUE)
    return policy


def local_fleets(
    env: dict[str, str], *, queues: dict[str, str], boot_seconds: int
) -> list[dict[str, object]]:
    """SCALING_FLEETS for the local fleets: ``queues`` maps each fleet to its queue URL."""
    fleets: list[dict[str, object]] = [
        {
            "name": "video",
            "asg_name": env.get("SCALING_ASG_NAME") or defaults.SCALING_ASG_NAME,
            "source": "port",
            "queue_url": queues["video"],
            "policy": fleet_policy(
                env, hold=_whole(env.get("VIDEO_WORKER_HOLD_SECONDS")), boot_seconds=boot_seconds
            ),
        }
    ]
    if AI_FLEET in queues:
        hold = _whole(env.get("DEVSTACK_CONSUMER_HOLD_SECONDS"))
        fleets.append(
            {
                "name": AI_FLEET,
                "asg_name": AI_ASG_NAME,
                "source": "sqs",
                "queue_url": queues[AI_FLEET],
                "namespace": AI_NAMESPACE,
                "dimensions": {"WorkerType": AI_WORKER_TYPE},
                "leases": False,
                "policy": fleet_policy(env, hold=hold, boot_seconds=boot_seconds),
            }
        )
    return fleets


def policy_install(env: dict[str, str], *, boot_seconds: int) -> str:
    """Install the policy on the local group; its summary line, or SetupError."""
    argv = policy_argv(env, boot_seconds=boot_seconds)
    result = subprocess.run(
        [sys.executable, *argv], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        reason = said[-1].strip() if said else "no message"
        raise SetupError(
            f"installing the scaling policy on the local group failed (exit "
            f"{result.returncode}): {reason[:300]}"
        )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[0] if lines else "installed"


def _shell_value(value: str) -> str:
    """As `set -a; . devstack.env` must read it back (devstack.demo reads it too)."""
    return value if _SHELL_SAFE.fullmatch(value) else "'" + value.replace("'", "'\\''") + "'"


def _env_file_write(env: dict[str, str]) -> None:
    ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={_shell_value(env[name])}" for name in _SHARED_NAMES if env.get(name)]
    ENV_FILE.write_text("\n".join(lines) + "\n")
    ENV_FILE.chmod(0o600)


def _admin_ensure(env: dict[str, str]) -> Path:
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
    return password_file


def _migrate(env: dict[str, str]) -> None:
    args = [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"]
    returncode = subprocess.run(args, cwd=BASE_DIR, env=env, check=False).returncode
    if returncode != 0:
        raise SetupError(f"manage.py migrate failed (exit {returncode}): see above")


def where_to_look(
    *, local: bool, password_file: Path, fleets: tuple[str, ...] = ("video",)
) -> list[str]:
    """The lines printed once the web server answers."""
    # A stack in another directory: the second shell needs it too.
    var = f"ACADEMY_VAR_DIR={VAR_DIR} " if os.environ.get("ACADEMY_VAR_DIR") else ""
    lines = [
        f"Ready. Admin: http://{WEB_HOST}:{WEB_PORT}/admin/  login: admin, password in "
        f"{password_file}",
        "In another shell:",
        f"  {var}make status            what is published, installed and running",
        f"  {var}make burst COUNT=30    upload 30 videos at once (admin: Videos > Upload a burst)",
    ]
    if AI_FLEET in fleets:
        lines.append(f"  {var}make burst FLEET=ai COUNT=20    send 20 jobs to the ai fleet's queue")
    if local:
        lines.append(f"  {var}make demo              upload videos and watch the loop close")
    lines.append("Ctrl-C stops everything.")
    return lines


def _announce_when_up(manager: StackManager, lines: list[str]) -> None:
    def wait_then_say() -> None:
        with contextlib.suppress(RuntimeError):  # web never came up: its own lines say why
            port_wait(WEB_HOST, WEB_PORT, timeout=120)
            time.sleep(ANNOUNCE_AFTER_SECONDS)
            for line in lines:
                manager.say(line)

    threading.Thread(target=wait_then_say, name="announce", daemon=True).start()


def _setup(manager: StackManager, env: dict[str, str], *, aws: StackProcess | None) -> list[str]:
    """Everything before the processes: the local endpoint (``aws``, when given), the
    database, the admin, the policy. Returns the lines to print once the stack answers."""
    local = aws is not None
    _port_check(WEB_HOST, WEB_PORT, "the web server")
    fleets: tuple[str, ...] = ("video",)
    if aws is not None:
        try:
            boot_seconds = boot_seconds_get(env)
        except BootSecondsError as exc:
            raise SetupError(str(exc)) from None
        try:
            fleets = devstack_fleets_get(env)
        except FleetsError as exc:
            raise SetupError(str(exc)) from None
        _port_check(AWS_HOST, AWS_PORT, "the local AWS endpoint")
        manager.note(f"No AWS endpoint or credentials configured: a local one on port {AWS_PORT}")
        manager.add(aws, env=dict(env), cwd=str(BASE_DIR))
        manager.start_early(aws.name)
        try:
            port_wait(AWS_HOST, AWS_PORT)
        except RuntimeError as exc:
            raise SetupError(f"the local AWS endpoint did not come up: {exc}") from None
        env.update(LOCAL_CREDENTIALS)
        env["AWS_ENDPOINT_URL"] = f"http://{AWS_HOST}:{AWS_PORT}"
        env.setdefault("AWS_REGION", LOCAL_REGION)
        created = local_aws_bootstrap(env["AWS_ENDPOINT_URL"], region=env["AWS_REGION"])
        env.setdefault("SCALING_SQS_QUEUE_URL", created["queue_url"])
        env.setdefault("SCALING_PUBLISH_INTERVAL_SECONDS", LOCAL_INTERVAL_SECONDS)
        env.setdefault("VIDEO_WORKER_HOLD_SECONDS", LOCAL_HOLD_SECONDS)
        if AI_FLEET in fleets:
            ai = local_aws_bootstrap(
                env["AWS_ENDPOINT_URL"],
                region=env["AWS_REGION"],
                asg_name=AI_ASG_NAME,
                queue_name=AI_QUEUE_NAME,
            )
            env.setdefault("DEVSTACK_CONSUMER_HOLD_SECONDS", LOCAL_CONSUMER_HOLD_SECONDS)
            if not env.get("SCALING_FLEETS"):  # one given in the environment is kept
                queues = {"video": env["SCALING_SQS_QUEUE_URL"], AI_FLEET: ai["queue_url"]}
                env["SCALING_FLEETS"] = json.dumps(
                    local_fleets(env, queues=queues, boot_seconds=boot_seconds),
                    separators=(",", ":"),
                )
    env.setdefault("INTERNAL_API_KEY", "local-" + secrets.token_hex(8))
    env.setdefault("WORKER_API_KEY", "local-worker-" + secrets.token_hex(8))
    env.setdefault("PYTHONUNBUFFERED", "1")
    _env_file_write(env)
    _migrate(env)
    password_file = _admin_ensure(env)
    if local and env.get("SCALING_FLEETS"):
        try:
            installed = fleets_policy_install(env, cwd=BASE_DIR)
        except FleetsError as exc:
            raise SetupError(str(exc)) from None
        for line in installed:
            manager.note("Scaling policy, fleet " + line)
    elif local:
        manager.note("Scaling policy: " + policy_install(env, boot_seconds=boot_seconds))
    return where_to_look(local=local, password_file=password_file, fleets=fleets)


def main() -> int:
    env = dict(os.environ)
    local = not _aws_configured()
    processes = stack_processes(local=local, python=sys.executable)
    aws = next((p for p in processes if p.name == "aws"), None)
    manager = StackManager()
    try:
        lines = _setup(manager, env, aws=aws)
    except SetupError as exc:
        manager.abort()
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        manager.abort()
        return 130
    except BaseException:  # a bug: leave nothing running, show it
        manager.abort()
        raise
    # The others start with the environment the setup completed.
    for process in processes:
        if process is not aws:
            manager.add(process, env=env, cwd=str(BASE_DIR))
    _announce_when_up(manager, lines)
    manager.loop()
    # Stopped by Ctrl-C / SIGTERM: 0; a process that exited by itself stopped the stack.
    return 0 if manager.returncode in (130, 143) else (manager.returncode or 1)


if __name__ == "__main__":
    sys.exit(main())
