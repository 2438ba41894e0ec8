"""The injector: plays the plan's faults on the running loop and writes down what each hit.

One fault at a time, each a ``FaultRecord`` (what, from when to when, which worker,
instance and video, the videos held when it began), appended to ``faults.jsonl``.
A fault waits up to ``BUSY_WAIT_SECONDS`` for a video to be held (a worker fault: for a
worker holding one), so that most faults meet work in progress; a worker fault that
finds none takes an idle worker (it then hits no video).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from bench.soak_loop.plan import INSTANT_KINDS, PlannedFault
from bench.soak_loop.stack import LoopStack
from devstack.localaws import local_client

BUSY_WAIT_SECONDS = 15.0
_STARTED = re.compile(r"instance (i-\w+) booted: worker pid (\d+) started")


@dataclass
class FaultRecord:
    kind: str
    start: float  # epoch seconds
    end: float
    detail: str = ""
    video_id: int | None = None  # the video a worker fault hit
    instance_id: str = ""
    held: list[int] = field(default_factory=list)  # PROCESSING videos when it began


def held_videos() -> dict[int, str]:
    """PROCESSING videos and the instance each lease names (the orchestrator's direct view)."""
    from video.models import Video, VideoStatus

    rows = Video.objects.filter(status=VideoStatus.PROCESSING).values_list(
        "pk", "lease_instance_id"
    )
    return dict(rows)


def worker_pids(fleet_log: str) -> dict[str, int]:
    """instance -> the pid of its latest worker, from the fleet's log."""
    return {instance: int(pid) for instance, pid in _STARTED.findall(fleet_log)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Injector:
    def __init__(
        self, stack: LoopStack, faults: tuple[PlannedFault, ...], *, start: float, seed: int
    ):
        self.stack = stack
        self.pending = sorted(faults, key=lambda f: f.at)
        self.start = start
        self.rng = random.Random(seed + 1)
        self.records: list[FaultRecord] = []
        self.active: tuple[PlannedFault, FaultRecord] | None = None
        self._waiting_since: float | None = None
        self._log = stack.tmp / "faults.jsonl"

    def step(self, now: float) -> None:
        """Begin or end whatever is due at ``now``."""
        if self.active is not None:
            planned, record = self.active
            if now >= record.start + planned.seconds:
                self._end(planned, record, now)
            return
        if self.pending and now >= self.start + self.pending[0].at:
            planned = self.pending[0]
            if not self._due(planned.kind, now):
                return
            self.pending.pop(0)
            self._begin(planned, now)

    def finish(self) -> None:
        """End the running fault now (the window is over, or the run is aborted)."""
        if self.active is not None:
            planned, record = self.active
            self._end(planned, record, time.time())
        self.pending = []

    def _due(self, kind: str, now: float) -> bool:
        """A fault goes ahead once a video is held (for a worker fault: by a worker whose
        pid the fleet logged), or after ``BUSY_WAIT_SECONDS`` of waiting for one."""
        if self._waiting_since is None:
            self._waiting_since = now
        held = set(held_videos().values())
        if kind in ("worker-kill", "worker-term"):
            held &= set(worker_pids(self.stack.log("fleet")))
        if held or now - self._waiting_since >= BUSY_WAIT_SECONDS:
            self._waiting_since = None
            return True
        return False

    def _begin(self, planned: PlannedFault, now: float) -> None:
        held = held_videos()
        record = FaultRecord(kind=planned.kind, start=now, end=now, held=sorted(held))
        kind = planned.kind
        if kind in ("worker-kill", "worker-term"):
            self._signal_worker(
                record, held, signal.SIGKILL if kind == "worker-kill" else signal.SIGTERM
            )
        elif kind.startswith("api-freeze"):
            os.killpg(self.stack.pid("api"), signal.SIGSTOP)
            record.detail = "gunicorn and its workers stopped (SIGSTOP)"
        elif kind == "queue-purge":
            sqs = local_client("sqs", self.stack.endpoint, self.stack.region)
            try:
                sqs.purge_queue(QueueUrl=self.stack.queue_url)
                record.detail = "PurgeQueue on the job queue"
            except ClientError as exc:  # SQS allows one purge a minute
                record.kind = "queue-purge-refused"
                record.detail = f"PurgeQueue refused, nothing purged: {exc}"
        else:
            target, mode = kind.rsplit("-", 1)
            self.stack.proxies[target].set_mode(mode)  # type: ignore[arg-type]
            record.detail = f"{target} proxy: {mode}"
        if kind in INSTANT_KINDS:
            self._record(record)
        else:
            self.active = (planned, record)

    def _end(self, planned: PlannedFault, record: FaultRecord, now: float) -> None:
        if planned.kind.startswith("api-freeze"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.stack.pid("api"), signal.SIGCONT)
        else:
            target = planned.kind.rsplit("-", 1)[0]
            self.stack.proxies[target].set_mode("pass")
        record.end = now
        self.active = None
        self._record(record)

    def _signal_worker(self, record: FaultRecord, held: dict[int, str], signum: int) -> None:
        pids = {i: p for i, p in worker_pids(self.stack.log("fleet")).items() if pid_alive(p)}
        busy = sorted((v, i) for v, i in held.items() if i in pids)
        if busy:
            video_id, instance_id = self.rng.choice(busy)
            record.video_id = video_id
        elif pids:
            instance_id = self.rng.choice(sorted(pids))
        else:
            record.detail = "no worker running: nothing signalled"
            return
        record.instance_id = instance_id
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[instance_id], signum)
        name = signal.Signals(signum).name
        what = f"video {record.video_id}" if record.video_id is not None else "no video"
        record.detail = f"{name} to worker pid {pids[instance_id]} on {instance_id} ({what})"

    def _record(self, record: FaultRecord) -> None:
        self.records.append(record)
        line: dict[str, Any] = asdict(record)
        with self._log.open("a") as out:
            out.write(json.dumps(line) + "\n")
        print(
            f"soak-loop: {time.strftime('%H:%M:%S', time.gmtime(record.start))} "
            f"+{record.start - self.start:.0f} s {record.kind} "
            f"{record.end - record.start:.1f} s: {record.detail}",
            flush=True,
        )
