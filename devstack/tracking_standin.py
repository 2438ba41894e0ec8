"""A local stand-in for AWS target tracking, for `make run` only (devstack.fleet runs it).

moto's server keeps the Auto Scaling group and the scaling policy but never
evaluates CloudWatch alarms, so on the local endpoint nothing ever changes the
desired capacity. ``TargetTrackingStandIn.step``, once per slot, does what
target tracking would settle on:

    the newest published BacklogCount (the MetricPublication audit row: what went
    to CloudWatch; a failed slot published nothing)
    + the installed policy (``installed_policy_get``), or, when none is installed,
      the installer's default: per instance, target 3 (a log line says which)
    -> ``capacity_aim`` (within the group's min and max)
    -> SetDesiredCapacity on moto (HonorCooldown False)

It is NOT AWS's algorithm: no alarms, no datapoint counts, no slow scale-in; it
jumps to where target tracking settles, so a local demo closes in minutes. No
publication, a stale one (older than a few slots), the database or moto down:
one log line until it changes, nothing done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from scaling.errors import error_one_line

log = logging.getLogger("devstack.fleet")

STAND_IN = "target tracking stand-in (local only)"
STALE_SLOTS = 3  # a publication older than this many slots is no data
# The instance still runs in these states.
RUNNING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
AWS_ERRORS = (BotoCoreError, ClientError)
# One short attempt: moto is on loopback, and an outage is reported, not waited out.
_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1}
)


def one_line(exc: BaseException) -> str:
    return error_one_line(exc, limit=300, first_line=True)


def endpoint_is_local(url: str) -> bool:
    """Only an endpoint on this machine: the stand-in must never scale a real group."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


def autoscaling_client_local(endpoint_url: str, region: str) -> Any:
    """The stand-in's own client: it plays AWS, so no IAM role of the app applies."""
    return boto3.session.Session().client(
        "autoscaling", region_name=region, endpoint_url=endpoint_url, config=_CLIENT_CONFIG
    )


class LineOnChange:
    """Log a line only when it differs from the last one under the same key."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def __call__(self, key: str, line: str, level: int = logging.INFO) -> None:
        if self._last.get(key) != line:
            self._last[key] = line
            log.log(level, line)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


def group_describe(autoscaling: Any, asg_name: str) -> dict[str, Any]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    if not groups["AutoScalingGroups"]:
        raise LookupError(f"group {asg_name} does not exist on the local endpoint")
    return dict(groups["AutoScalingGroups"][0])


@dataclass(frozen=True)
class Published:
    value: int
    slot_start: datetime


def publication_latest_read() -> Published | None:
    """The newest BacklogCount that went to CloudWatch (failed slots published nothing)."""
    from scaling.models import MetricPublication, PublicationStatus

    row = (
        MetricPublication.objects.filter(status=PublicationStatus.PUBLISHED, value__isnull=False)
        .order_by("-slot_start")
        .values_list("value", "slot_start")
        .first()
    )
    return None if row is None or row[0] is None else Published(int(row[0]), row[1])


@dataclass(frozen=True)
class Aiming:
    mode: str
    target: float
    source: str  # which policy: installed, or the default and why


def policy_read() -> Aiming:
    from scaling.audit.status import installed_policy_get
    from scaling.policy.aim import MODES
    from scaling.policy.options import DEFAULT_TARGET_VALUE

    installed = installed_policy_get()
    if isinstance(installed, str):
        return Aiming(MODES[0], DEFAULT_TARGET_VALUE, f"default, {installed}")
    return Aiming(installed.mode, installed.target, "installed policy")


class TargetTrackingStandIn:
    """Once per slot: published backlog + policy -> capacity_aim -> SetDesiredCapacity."""

    def __init__(
        self,
        autoscaling: Any,
        *,
        asg_name: str,
        interval_seconds: int,
        publication: Callable[[], Published | None] = publication_latest_read,
        policy: Callable[[], Aiming] = policy_read,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.autoscaling, self.asg_name = autoscaling, asg_name
        self.interval_seconds = interval_seconds
        self._publication, self._policy = publication, policy
        self._now = now or _utc_now
        self._say = LineOnChange()

    def step(self) -> int | None:
        """One evaluation; the desired capacity it set, or None when it set nothing."""
        from django.db import DatabaseError

        from scaling.policy.aim import AimError, capacity_aim

        try:
            published = self._publication()
        except DatabaseError as exc:
            self._say("input", f"{STAND_IN}: database unreadable, nothing done ({one_line(exc)})")
            return None
        if published is None:
            self._say("input", f"{STAND_IN}: no BacklogCount published yet, nothing done")
            return None
        age = (self._now() - published.slot_start).total_seconds()
        if age > (STALE_SLOTS + 1) * self.interval_seconds:
            self._say(
                "input",
                f"{STAND_IN}: latest BacklogCount is {age:.0f} s old (slot "
                f"{published.slot_start:%H:%M:%S}): no data, nothing done",
            )
            return None
        self._say.forget("input")
        try:
            aiming = self._policy()
            self._say("policy", f"{STAND_IN}: aims with the {_aiming_text(aiming)}")
            group = group_describe(self.autoscaling, self.asg_name)
            desired = int(group["DesiredCapacity"])
            aim = capacity_aim(
                backlog=published.value,
                target=aiming.target,
                mode=aiming.mode,
                min_size=int(group["MinSize"]),
                max_size=int(group["MaxSize"]),
            )
            # Also when the count is already right but more instances remain than asked
            # (they were protected at scale-in): asking again lets moto take them now.
            alive = [i for i in group.get("Instances", []) if i["LifecycleState"] in RUNNING_STATES]
            if aim == desired and len(alive) <= desired:
                self._say.forget("aws")
                return None
            self.autoscaling.set_desired_capacity(
                AutoScalingGroupName=self.asg_name, DesiredCapacity=aim, HonorCooldown=False
            )
        except (*AWS_ERRORS, LookupError) as exc:
            self._say("aws", f"{STAND_IN}: local AWS unreachable, nothing done ({one_line(exc)})")
            return None
        except AimError as exc:
            self._say("aws", f"{STAND_IN}: cannot aim ({exc}), nothing done")
            return None
        self._say.forget("aws")
        if aim != desired:
            log.info(
                "%s: BacklogCount %d (slot %s), %s %g -> desired capacity %d -> %d",
                STAND_IN,
                published.value,
                f"{published.slot_start:%H:%M:%S}",
                aiming.mode,
                aiming.target,
                desired,
                aim,
            )
        return aim


def _aiming_text(aiming: Aiming) -> str:
    per = " per instance" if aiming.mode == "per-instance" else " (total backlog)"
    return f"{aiming.source}: target {aiming.target:g}{per}"


def _utc_now() -> datetime:
    from django.utils import timezone

    return timezone.now()
