"""`make run`'s local fleet: one video worker per instance, and target tracking's stand-in.

moto's server keeps the Auto Scaling group but never evaluates CloudWatch alarms,
so on the local endpoint target tracking never acts and no instance runs anything.
``python -m devstack.fleet`` (started by the launcher on the local endpoint only;
it refuses any endpoint off this machine) plays both parts:

- ``devstack.tracking_standin.TargetTrackingStandIn``, once per slot: published
  BacklogCount + policy -> ``capacity_aim`` -> SetDesiredCapacity on moto.
- ``LocalFleet``, every few seconds: each InService instance of the group gets
  a ``manage.py video_worker --instance-id <id>`` process (its log lines are
  copied to this one's, prefixed with the instance); the worker of an instance
  that left the group is SIGKILLed, as a termination would (its lease runs out
  and the tick recovers the video). moto terminates only unprotected instances
  on scale-in; protection is the worker API's business, not this module's.

Every change is one log line; an outage is one line until it changes. SIGTERM or
SIGINT: every worker gets SIGTERM (it releases its video), SIGKILL after a few
seconds.
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

from devstack.tracking_standin import (
    AWS_ERRORS,
    STAND_IN,
    LineOnChange,
    TargetTrackingStandIn,
    autoscaling_client_local,
    endpoint_is_local,
    group_describe,
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
    """One worker per InService instance; a worker whose instance left the group is killed."""

    def __init__(
        self,
        autoscaling: Any,
        *,
        asg_name: str,
        spawner: Spawner,
        restart_after: float = RESTART_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.autoscaling, self.asg_name, self.spawner = autoscaling, asg_name, spawner
        self.restart_after, self.clock = restart_after, clock
        self.workers: dict[str, Worker] = {}
        self._exited_at: dict[str, float] = {}  # instance -> when its worker exited on its own
        self._say = LineOnChange()

    def step(self) -> None:
        try:
            group = group_describe(self.autoscaling, self.asg_name)
        except (*AWS_ERRORS, LookupError) as exc:
            # Unreachable is not terminated: every worker goes on as it is.
            self._say(
                "aws", f"local fleet: cannot read the group, nothing changed ({one_line(exc)})"
            )
            return
        self._say.forget("aws")
        states = {i["InstanceId"]: i["LifecycleState"] for i in group.get("Instances", [])}
        for instance_id, worker in list(self.workers.items()):
            if states.get(instance_id, "Terminated") in LEAVING_STATES:
                worker.kill()
                worker.wait()
                del self.workers[instance_id]
                log.info("instance %s terminated: worker pid %d killed", instance_id, worker.pid)
            elif (code := worker.poll()) is not None:
                del self.workers[instance_id]
                self._exited_at[instance_id] = self.clock()
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
        for instance_id, state in sorted(states.items()):
            if state != "InService" or instance_id in self.workers:
                continue
            exited = self._exited_at.get(instance_id)
            if exited is not None and self.clock() - exited < self.restart_after:
                continue
            self._spawn(instance_id)

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
        log.info("instance %s launched: worker pid %d", instance_id, worker.pid)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM every worker (each releases its video), SIGKILL what is left after ``grace``."""
        for worker in self.workers.values():
            if worker.poll() is None:
                worker.terminate()
        deadline = time.monotonic() + grace
        for instance_id, worker in self.workers.items():
            try:
                worker.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                log.info("instance %s: worker pid %d killed at shutdown", instance_id, worker.pid)
        self.workers.clear()


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


def slot_index(now: float, interval: int) -> int:
    """Which evaluation ``now`` falls in: slots shifted by half a slot, so the stand-in
    reads each slot's publication after its tick (which starts at the boundary) wrote it."""
    return int((now - interval / 2) // interval)


def run(
    stand_in: TargetTrackingStandIn,
    fleet: LocalFleet,
    stopping: threading.Event,
    *,
    fleet_seconds: float = FLEET_SECONDS,
    clock: Callable[[], float] = time.time,
) -> None:
    """Until ``stopping``: the stand-in once a slot, the fleet every ``fleet_seconds``."""
    say = LineOnChange()
    evaluated = None
    steps: list[tuple[str, Callable[[], object]]] = [
        ("stand-in", stand_in.step),
        ("fleet", fleet.step),
    ]
    try:
        while not stopping.is_set():
            slot = slot_index(clock(), stand_in.interval_seconds)
            for name, step in steps:
                if name == "stand-in" and slot == evaluated:
                    continue
                try:
                    step()
                    say.forget(name)
                except Exception as exc:  # a supervisor loop: one line, then the next round
                    say(name, f"local {name}: step failed ({one_line(exc)})", logging.ERROR)
            evaluated = slot
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
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    import django

    django.setup()
    from scaling.conf import scaling_settings

    conf = scaling_settings()
    endpoint = conf.endpoint_url or ""
    if not endpoint_is_local(endpoint):
        log.error(
            "devstack.fleet runs only against a local endpoint (AWS_ENDPOINT_URL="
            "http://127.0.0.1:<port>), got %r: it would scale a real group.",
            endpoint,
        )
        return 2
    autoscaling = autoscaling_client_local(endpoint, conf.region)
    api_url = os.environ.get("DEVSTACK_API_URL", "http://127.0.0.1:8000")
    stand_in = TargetTrackingStandIn(
        autoscaling, asg_name=conf.asg_name, interval_seconds=conf.interval
    )
    fleet = LocalFleet(autoscaling, asg_name=conf.asg_name, spawner=worker_spawner(api_url))
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    if conf.sqs_queue_url:
        queue_refill(conf.sqs_queue_url)
    log.info(
        "local fleet on %s: group %s, one video worker per InService instance; %s every %d s",
        endpoint,
        conf.asg_name,
        STAND_IN,
        conf.interval,
    )
    run(stand_in, fleet, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
