"""make run's second fleet, ``ai``: its names, which fleets run (``DEVSTACK_FLEETS``),
their policies installed (``install_scaling_policy --all``), and ``QueueWatch``.

The ai fleet is measured by its SQS queue's depth (visible + in flight; its jobs live
only there), has its own group and queue, publishes BacklogCount to Academy/Workers
with WorkerType AI and holds no leases; ``devstack.fleet`` runs a stand-in consumer
(``devstack.consumer``) per booted instance. The launcher builds SCALING_FLEETS from
these names (``devstack.launcher.local_fleets``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.localgroup import group_read
from devstack.loop import timeline_periods

# The local fleets (DEVSTACK_FLEETS, in this order): video, measured by the backlog port
# (its workers hold leases), and ai, measured by its SQS queue's depth.
LOCAL_FLEETS = ("video", "ai")
AI_FLEET = "ai"
AI_ASG_NAME = "academy-ai-worker-asg"
AI_QUEUE_NAME = "academy-ai-jobs"
AI_NAMESPACE = "Academy/Workers"
AI_WORKER_TYPE = "AI"
# How long the ai fleet's stand-in consumer holds each job (DEVSTACK_CONSUMER_HOLD_SECONDS).
LOCAL_CONSUMER_HOLD_SECONDS = "15"


class FleetsError(ValueError):
    """A bad DEVSTACK_FLEETS, or the policies not installed: one line, make run exits."""


def devstack_fleets_get(env: dict[str, str]) -> tuple[str, ...]:
    """DEVSTACK_FLEETS: the local fleets `make run` creates, comma-separated [video,ai].

    ``video`` alone is a single-fleet deployment (SCALING_FLEETS left unset); SetupError
    for anything but video and ai, or a list without video (the API's own fleet).
    """
    raw = env.get("DEVSTACK_FLEETS", "")
    if not raw.strip():
        return LOCAL_FLEETS
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if "video" not in names or names - set(LOCAL_FLEETS):
        raise FleetsError(
            f"DEVSTACK_FLEETS must be video or video,ai, got {raw!r}: unset it for both"
        )
    return tuple(name for name in LOCAL_FLEETS if name in names)


def fleets_policy_install(env: dict[str, str], *, cwd: Path) -> list[str]:
    """``install_scaling_policy --all``: each fleet's policy from its defaults in
    SCALING_FLEETS; one summary line per fleet, or FleetsError."""
    result = subprocess.run(
        [sys.executable, "manage.py", "install_scaling_policy", "--all"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        reason = said[-1].strip() if said else "no message"
        raise FleetsError(
            f"installing the fleets' scaling policies on the local groups failed (exit "
            f"{result.returncode}): {reason[:300]}"
        )
    lines = result.stdout.splitlines()
    summaries = []
    for index, line in enumerate(lines):
        if line.startswith("Fleet ") and line.endswith(":"):
            first = lines[index + 1].strip() if index + 1 < len(lines) else "installed"
            summaries.append(f"{line.removeprefix('Fleet ').removesuffix(':')}: {first}")
    return summaries or ["installed"]


@dataclass(frozen=True)
class QueueSample:
    seconds: float
    depth: int  # the queue's messages: visible + in flight (the fleet's backlog)
    desired: int
    running: int
    in_service: int


class QueueWatch:
    """An SQS-measured fleet through the live loop: its queue and its group."""

    def __init__(
        self,
        *,
        autoscaling: Any,
        ec2: Any,
        sqs: Any,
        asg_name: str,
        queue_url: str,
        boot_seconds: int,
        zero: float,
        timeline: Path,
    ) -> None:
        self.autoscaling, self.ec2, self.sqs = autoscaling, ec2, sqs
        self.asg_name, self.queue_url, self.boot = asg_name, queue_url, boot_seconds
        self.zero, self.timeline = zero, timeline
        self.samples: list[QueueSample] = []

    def sample(self, now: float | None = None) -> QueueSample:
        now = time.time() if now is None else now
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        group = group_read(self.autoscaling, self.ec2, self.asg_name)
        running = group.running()
        result = QueueSample(
            seconds=round(now - self.zero, 1),
            depth=int(attributes.get("ApproximateNumberOfMessages", 0))
            + int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            desired=group.desired,
            running=len(running),
            in_service=sum(1 for i in running if i.booted(now, self.boot)),
        )
        self.samples.append(result)
        return result

    def settled(self) -> bool:
        """The queue empty and the group back to nothing."""
        last = self.samples[-1] if self.samples else None
        return bool(last and last.depth == 0 and last.desired == 0 and last.running == 0)

    @property
    def peak_instances(self) -> int:
        return max((s.running for s in self.samples), default=0)

    @property
    def back_to_zero(self) -> float | None:
        """The first sample, after the group ran, with the queue empty and nothing running."""
        woke = False
        for s in self.samples:
            woke = woke or s.running > 0
            if woke and s.depth == 0 and s.desired == 0 and s.running == 0:
                return s.seconds
        return None

    def periods(self) -> list[dict[str, Any]]:
        return timeline_periods(self.timeline, asg_name=self.asg_name, zero=self.zero)
