"""`make run`'s local fleet: one real worker per in-service instance of each group.

``python -m devstack.fleet`` (started by the launcher on a local endpoint only; it
refuses any other) looks at every configured fleet's local group (SCALING_FLEETS;
unset: the video group alone) every few seconds:

- an InService instance that has booted (``DEVSTACK_BOOT_SECONDS`` after its EC2
  LaunchTime, ``devstack.localgroup``: the control plane counts it in service
  from the same moment) gets a process: a ``manage.py video_worker --instance-id
  <id>`` in a fleet measured by the backlog port (video), a stand-in consumer
  (``devstack.consumer``: receive, hold, delete) in a fleet measured by its SQS
  queue (make run's ``ai``); its log lines are copied to this one's, prefixed with
  the instance;
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from devstack.localaws import endpoint_is_local, local_client
from devstack.localgroup import (
    AWS_ERRORS,
    LineOnChange,
    LocalFleetGroup,
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
        kind: str = "worker",
    ) -> None:
        self.autoscaling, self.ec2, self.asg_name = autoscaling, ec2, asg_name
        self.kind = kind  # what the log lines call the process: worker | consumer
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
                    "instance %s terminated: %s pid %d stopped (SIGTERM)",
                    instance_id,
                    self.kind,
                    worker.pid,
                )
            elif (code := worker.poll()) is not None:
                del self.workers[instance_id]
                self._exited_at[instance_id] = now
                log.warning(
                    "instance %s: %s pid %d exited with code %d; restarted in %g s",
                    instance_id,
                    self.kind,
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
                    "instance %s: %s pid %d killed (no exit after SIGTERM)",
                    instance_id,
                    self.kind,
                    worker.pid,
                )

    def _spawn(self, instance_id: str) -> None:
        try:
            worker = self.spawner(instance_id)
        except OSError as exc:
            self._say(
                f"spawn:{instance_id}", f"instance {instance_id}: no {self.kind} ({one_line(exc)})"
            )
            return
        self._say.forget(f"spawn:{instance_id}")
        self._exited_at.pop(instance_id, None)
        self.workers[instance_id] = worker
        log.info("instance %s booted: %s pid %d started", instance_id, self.kind, worker.pid)

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
                log.info(
                    "instance %s: %s pid %d killed at shutdown", instance_id, self.kind, worker.pid
                )
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


def _process_spawner(
    argv_of: Callable[[str], list[str]], prefix_of: Callable[[str], str], env: dict[str, str] | None
) -> Spawner:
    def spawn(instance_id: str) -> Worker:
        process = subprocess.Popen(
            argv_of(instance_id),
            cwd=BASE_DIR,
            env=env if env is not None else dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(
            target=_output_copy, args=(process.stdout, prefix_of(instance_id)), daemon=True
        ).start()
        return process

    return spawn


def worker_spawner(api_url: str, env: dict[str, str] | None = None) -> Spawner:
    """Real ``manage.py video_worker`` processes, in this process's environment."""
    return _process_spawner(
        lambda instance_id: [
            sys.executable,
            "manage.py",
            "video_worker",
            "--instance-id",
            instance_id,
            "--api-url",
            api_url,
        ],
        lambda instance_id: f"[{instance_id}] ",
        env,
    )


def consumer_spawner(fleet: str, queue_url: str, env: dict[str, str] | None = None) -> Spawner:
    """Stand-in consumers of ``queue_url`` (``devstack.consumer``), lines prefixed with
    the fleet and the instance."""
    return _process_spawner(
        lambda instance_id: [
            sys.executable,
            "-m",
            "devstack.consumer",
            "consume",
            "--queue-url",
            queue_url,
            "--instance-id",
            instance_id,
        ],
        lambda instance_id: f"[{fleet} {instance_id}] ",
        env,
    )


def run(
    fleet: LocalFleet | Sequence[LocalFleet],
    stopping: threading.Event,
    *,
    fleet_seconds: float = FLEET_SECONDS,
) -> None:
    """Until ``stopping``: each fleet every ``fleet_seconds``; every worker stopped at the end."""
    fleets = [fleet] if isinstance(fleet, LocalFleet) else list(fleet)
    say = LineOnChange(log)
    try:
        while not stopping.is_set():
            for each in fleets:
                try:
                    each.step()
                    say.forget(f"fleet:{each.asg_name}")
                except Exception as exc:  # a supervisor loop: one line, then the next round
                    say(
                        f"fleet:{each.asg_name}",
                        f"local fleet: step failed ({one_line(exc)})",
                        logging.ERROR,
                    )
            stopping.wait(fleet_seconds)
    finally:
        # Side by side: every group's workers get SIGTERM at once, one grace for all.
        stops = [
            threading.Thread(target=each.stop, name=f"stop-{each.asg_name}") for each in fleets
        ]
        for thread in stops:
            thread.start()
        for thread in stops:
            thread.join()


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


def group_spawner(group: LocalFleetGroup, api_url: str, env: dict[str, str]) -> Spawner:
    """A video worker per instance where the port measures the backlog (the workers hold
    leases through the worker API), a stand-in consumer of the queue where SQS does."""
    if group.source == "port":
        return worker_spawner(api_url, env)
    return consumer_spawner(group.name, group.queue_url, env)


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
    autoscaling = local_client("autoscaling", setup.endpoint, setup.region)
    ec2 = local_client("ec2", setup.endpoint, setup.region)
    fleets = [
        LocalFleet(
            autoscaling,
            ec2,
            asg_name=group.asg_name,
            spawner=group_spawner(group, api_url, worker_env),
            boot_seconds=setup.boot_seconds,
            kind="worker" if group.source == "port" else "consumer",
        )
        for group in setup.fleets
    ]
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for group in setup.fleets:
        if group.source == "port" and group.queue_url:
            queue_refill(group.queue_url)
    for group in setup.fleets:
        log.info(
            "local fleet on %s: group %s (fleet %s), one %s per instance, started %d s "
            "after launch",
            setup.endpoint,
            group.asg_name,
            group.name,
            "video worker" if group.source == "port" else "stand-in consumer of its queue",
            setup.boot_seconds,
        )
    run(fleets, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
