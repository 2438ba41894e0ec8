"""`make run`'s local fleet: one real video worker per in-service instance of the group.

``python -m devstack.fleet`` (started by the launcher on a local endpoint only; it
refuses any other) looks at the local group every few seconds:

- an InService instance that has booted (``DEVSTACK_BOOT_SECONDS`` after its EC2
  LaunchTime, ``devstack.localgroup``: the control plane counts it in service
  from the same moment) gets a ``manage.py video_worker --instance-id <id>``
  process; its log lines are copied to this one's, prefixed with the instance;
- the worker of an instance that left the group gets SIGTERM (it releases a video
  it still holds; SIGKILL after a few seconds), as a shutdown on termination would.

moto terminates only unprotected instances on scale-in; protection is the worker
API's business, and desired capacity the control plane's
(``devstack.controlplane``), not this module's. Every change is one log line; an
outage is one line until it changes. SIGTERM or SIGINT: every worker gets SIGTERM,
SIGKILL after a few seconds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from devstack.localaws import endpoint_is_local, local_client
from devstack.localgroup import (
    AWS_ERRORS,
    LineOnChange,
    group_read,
    local_setup,
    one_line,
)

log = logging.getLogger("devstack.fleet")

BASE_DIR = Path(__file__).resolve().parent.parent
FLEET_SECONDS = 2.0  # how often the fleet looks at the group
RESTART_AFTER_SECONDS = 10.0  # a worker that exited on its own is restarted no sooner
STOP_GRACE_SECONDS = 6.0  # SIGTERM (the worker releases its video), then SIGKILL
# Gone, or going without a drain hook holding it (Terminating:Wait still runs).
LEAVING_STATES = frozenset({"Terminating", "Terminating:Proceed", "Terminated"})


class Worker(Protocol):
    """What the fleet needs of a worker process (``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int: ...
    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


Spawner = Callable[[str], Worker]


class LocalFleet:
    """One worker per booted InService instance; the worker of an instance that left the
    group gets SIGTERM, then SIGKILL after ``stop_grace`` seconds."""

    def __init__(
        self,
        autoscaling: Any,
        ec2: Any,
        *,
        asg_name: str,
        spawner: Spawner,
        boot_seconds: int,
        restart_after: float = RESTART_AFTER_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.autoscaling, self.ec2, self.asg_name = autoscaling, ec2, asg_name
        self.spawner, self.boot_seconds = spawner, boot_seconds
        self.restart_after, self.stop_grace, self.clock = restart_after, stop_grace, clock
        self.workers: dict[str, Worker] = {}
        self.stopping: dict[str, tuple[Worker, float]] = {}  # instance -> (worker, kill at)
        self._exited_at: dict[str, float] = {}  # instance -> when its worker exited on its own
        self._say = LineOnChange(log)

    def step(self) -> None:
        self._stopping_reap()
        try:
            group = group_read(self.autoscaling, self.ec2, self.asg_name)
        except (*AWS_ERRORS, LookupError) as exc:
            # Unreachable is not terminated: every worker goes on as it is.
            self._say(
                "aws", f"local fleet: cannot read the group, nothing changed ({one_line(exc)})"
            )
            return
        self._say.forget("aws")
        now = self.clock()
        states = {i.instance_id: i for i in group.instances}
        for instance_id, worker in list(self.workers.items()):
            instance = states.get(instance_id)
            if instance is None or instance.state in LEAVING_STATES:
                del self.workers[instance_id]
                if worker.poll() is None:
                    worker.terminate()
                    self.stopping[instance_id] = (worker, now + self.stop_grace)
                log.info(
                    "instance %s terminated: worker pid %d stopped (SIGTERM)",
                    instance_id,
                    worker.pid,
                )
            elif (code := worker.poll()) is not None:
                del self.workers[instance_id]
                self._exited_at[instance_id] = now
                log.warning(
                    "instance %s: worker pid %d exited with code %d; restarted in %g s",
                    instance_id,
                    worker.pid,
                    code,
                    self.restart_after,
                )
        for instance_id in list(self._exited_at):
            if instance_id not in states:
                del self._exited_at[instance_id]
        for instance_id, instance in sorted(states.items()):
            if instance_id in self.workers or instance_id in self.stopping:
                continue
            if not instance.booted(now, self.boot_seconds):
                continue
            exited = self._exited_at.get(instance_id)
            if exited is not None and now - exited < self.restart_after:
                continue
            self._spawn(instance_id)

    def _stopping_reap(self) -> None:
        for instance_id, (worker, kill_at) in list(self.stopping.items()):
            if worker.poll() is not None:
                del self.stopping[instance_id]
            elif self.clock() >= kill_at:
                worker.kill()
                worker.wait()
                del self.stopping[instance_id]
                log.info(
                    "instance %s: worker pid %d killed (no exit after SIGTERM)",
                    instance_id,
                    worker.pid,
                )

    def _spawn(self, instance_id: str) -> None:
        try:
            worker = self.spawner(instance_id)
        except OSError as exc:
            self._say(
                f"spawn:{instance_id}", f"instance {instance_id}: no worker ({one_line(exc)})"
            )
            return
        self._say.forget(f"spawn:{instance_id}")
        self._exited_at.pop(instance_id, None)
        self.workers[instance_id] = worker
        log.info("instance %s booted: worker pid %d started", instance_id, worker.pid)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (each releases its video), SIGKILL what is left after ``grace``."""
        every = {**{i: w for i, (w, _) in self.stopping.items()}, **self.workers}
        for worker in every.values():
            if worker.poll() is None:
                worker.terminate()
        deadline = time.monotonic() + grace
        for instance_id, worker in every.items():
            try:
                worker.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                log.info("instance %s: worker pid %d killed at shutdown", instance_id, worker.pid)
        self.workers.clear()
        self.stopping.clear()


_output_lock = threading.Lock()


def _output_copy(stream: Any, prefix: str) -> None:
    """The worker's log lines on our stderr, each prefixed with its instance."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with _output_lock:
            print(f"{prefix}{line}", file=sys.stderr, flush=True)
    stream.close()


def worker_spawner(api_url: str, env: dict[str, str] | None = None) -> Spawner:
    """Real ``manage.py video_worker`` processes, in this process's environment."""

    def spawn(instance_id: str) -> Worker:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "video_worker",
                "--instance-id",
                instance_id,
                "--api-url",
                api_url,
            ],
            cwd=BASE_DIR,
            env=env if env is not None else dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(
            target=_output_copy, args=(process.stdout, f"[{instance_id}] "), daemon=True
        ).start()
        return process

    return spawn


def run(
    fleet: LocalFleet, stopping: threading.Event, *, fleet_seconds: float = FLEET_SECONDS
) -> None:
    """Until ``stopping``: the fleet every ``fleet_seconds``; every worker stopped at the end."""
    say = LineOnChange(log)
    try:
        while not stopping.is_set():
            try:
                fleet.step()
                say.forget("fleet")
            except Exception as exc:  # a supervisor loop: one line, then the next round
                say("fleet", f"local fleet: step failed ({one_line(exc)})", logging.ERROR)
            stopping.wait(fleet_seconds)
    finally:
        fleet.stop()


def queue_refill(queue_url: str) -> int:
    """moto keeps nothing across restarts, the database under var/ does: every UPLOADED
    video gets its job message again (a duplicate is refused at claim). PROCESSING ones
    come back through lease recovery, which sends a new message itself."""
    from django.db import DatabaseError

    from video.jobs import video_job_send
    from video.models import Video, VideoStatus

    try:
        ids = list(Video.objects.filter(status=VideoStatus.UPLOADED).values_list("pk", flat=True))
    except DatabaseError as exc:
        log.warning("local queue not refilled: database unreadable (%s)", one_line(exc))
        return 0
    sent = sum(video_job_send(pk, queue_url=queue_url) for pk in ids)
    if ids:
        log.info("local queue is new: %d of %d UPLOADED videos' job messages sent", sent, len(ids))
    return sent


def main() -> int:
    setup = local_setup("devstack.fleet", log)
    if setup is None:
        return 2
    api_url = os.environ.get("DEVSTACK_API_URL", "http://127.0.0.1:8000")
    # DEVSTACK_WORKER_AWS_ENDPOINT_URL (the loop soak's): the workers reach SQS through
    # another local endpoint (a fault proxy) while the fleet reads the group directly.
    worker_endpoint = os.environ.get("DEVSTACK_WORKER_AWS_ENDPOINT_URL", "").strip()
    if worker_endpoint and not endpoint_is_local(worker_endpoint):
        log.error("DEVSTACK_WORKER_AWS_ENDPOINT_URL must be local, got %r", worker_endpoint)
        return 2
    worker_env = {
        **os.environ,
        **({"AWS_ENDPOINT_URL": worker_endpoint} if worker_endpoint else {}),
    }
    fleet = LocalFleet(
        local_client("autoscaling", setup.endpoint, setup.region),
        local_client("ec2", setup.endpoint, setup.region),
        asg_name=setup.asg_name,
        spawner=worker_spawner(api_url, worker_env),
        boot_seconds=setup.boot_seconds,
    )
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if setup.sqs_queue_url:
        queue_refill(setup.sqs_queue_url)
    log.info(
        "local fleet on %s: group %s, one video worker per instance, started %d s after launch",
        setup.endpoint,
        setup.asg_name,
        setup.boot_seconds,
    )
    run(fleet, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
