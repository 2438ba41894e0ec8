"""The local Auto Scaling group as `make run`'s control plane and fleet see it (moto only).

moto's server marks a new instance InService at once; a real instance boots
first. Both the control plane and the fleet play that boot the same way, from
one fact the endpoint keeps: the instance's EC2 ``LaunchTime``. An instance is
*booted* ``DEVSTACK_BOOT_SECONDS`` after it: the fleet starts its worker then,
and the control plane counts it in service from then on (EC2's Pending ->
InService), so the two processes agree without talking to each other.
An instance the control plane took from its warm pool (``devstack.localpool``) carries
the EC2 tag ``WARM_BOOT_TAG`` whose value is its boot in seconds: it is booted that
long after its LaunchTime instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.localaws import endpoint_is_local
from scaling.errors import error_one_line
from scaling.simulation.tracking import SCALE_IN_DATAPOINTS

BOOT_SECONDS_DEFAULT = 10
BOOT_SECONDS_MAX = 600
# The instance runs and counts in the group (Terminating:Wait, a drain hook's hold, is on
# its way out: not counted, though the fleet keeps its worker until it is gone).
RUNNING_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
AWS_ERRORS = (BotoCoreError, ClientError)
# On an instance drawn from the local warm pool: its boot in seconds (devstack.localpool).
WARM_BOOT_TAG = "academy:devstack:warm-boot"


class BootSecondsError(ValueError):
    pass


def boot_seconds_get(environ: dict[str, str] | None = None) -> int:
    """DEVSTACK_BOOT_SECONDS: how long a local instance boots before its worker runs."""
    raw = (environ if environ is not None else os.environ).get("DEVSTACK_BOOT_SECONDS", "")
    if not raw.strip():
        return BOOT_SECONDS_DEFAULT
    value = raw.strip()
    # isascii: "²" is a digit to isdigit() but not to int().
    if not (value.isascii() and value.isdigit()) or int(value) > BOOT_SECONDS_MAX:
        raise BootSecondsError(
            f"DEVSTACK_BOOT_SECONDS must be a whole number of seconds from 0 to "
            f"{BOOT_SECONDS_MAX}, got {raw!r}: set it in the environment"
        )
    return int(value)


# DEVSTACK_SCALE_IN_DATAPOINTS (the control plane's): a test-only shorter scale-in alarm
# (1 to AWS's 15).
SCALE_IN_DATAPOINTS_MAX = SCALE_IN_DATAPOINTS


class ScaleInDatapointsError(ValueError):
    pass


def scale_in_datapoints_get(environ: dict[str, str] | None = None) -> int:
    """DEVSTACK_SCALE_IN_DATAPOINTS: periods below 90 % of target before a scale-in [15].

    Only the loop test sets it (so the group is back at 0 sooner); unset, the control
    plane plays the 15 datapoints of the alarm AWS creates.
    """
    raw = (environ if environ is not None else os.environ).get("DEVSTACK_SCALE_IN_DATAPOINTS", "")
    if not raw.strip():
        return SCALE_IN_DATAPOINTS
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= SCALE_IN_DATAPOINTS_MAX:
        raise ScaleInDatapointsError(
            f"DEVSTACK_SCALE_IN_DATAPOINTS must be a whole number from 1 to "
            f"{SCALE_IN_DATAPOINTS_MAX}, got {raw!r}: unset it for AWS's {SCALE_IN_DATAPOINTS}"
        )
    return int(value)


def one_line(exc: BaseException) -> str:
    return error_one_line(exc, limit=300, first_line=True)


class LineOnChange:
    """Log a line only when it differs from the last one under the same key."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._last: dict[str, str] = {}

    def __call__(self, key: str, line: str, level: int = logging.INFO) -> None:
        if self._last.get(key) != line:
            self._last[key] = line
            self.log.log(level, line)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


@dataclass(frozen=True)
class LocalFleetGroup:
    """One configured fleet as the control plane and the fleet need it (scaling.fleets)."""

    name: str
    asg_name: str
    source: str  # "port": video workers (leases) | "sqs": stand-in consumers of queue_url
    queue_url: str


@dataclass(frozen=True)
class LocalSetup:
    """What the control plane and the fleet start from (the app's own settings)."""

    endpoint: str
    region: str
    asg_name: str
    interval: int
    sqs_queue_url: str
    boot_seconds: int
    # Every configured fleet (SCALING_FLEETS; unset: the one video fleet), in order.
    fleets: tuple[LocalFleetGroup, ...] = ()


def local_setup(program: str, log: logging.Logger) -> LocalSetup | None:
    """Django set up, the endpoint checked to be on this machine, DEVSTACK_BOOT_SECONDS
    read; None, after one error line, when ``program`` must not run (exit 2)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    import django

    django.setup()
    from scaling.conf import scaling_settings

    conf = scaling_settings()
    endpoint = conf.endpoint_url or ""
    if not endpoint_is_local(endpoint):
        log.error(
            "%s runs only against a local endpoint (AWS_ENDPOINT_URL="
            "http://127.0.0.1:<port>), got %r: it would scale a real group.",
            program,
            endpoint,
        )
        return None
    try:
        boot = boot_seconds_get()
    except BootSecondsError as exc:
        log.error("%s", exc)
        return None
    from scaling.fleets import fleets_parse

    fleets, problems = fleets_parse(conf)
    if problems or not fleets:
        said = problems[0].message if problems else "no fleet is configured"
        log.error("%s: %s (manage.py check says more)", program, said)
        return None
    return LocalSetup(
        endpoint=endpoint,
        region=conf.region,
        asg_name=conf.asg_name,
        interval=conf.interval,
        sqs_queue_url=conf.sqs_queue_url or "",
        boot_seconds=boot,
        fleets=tuple(
            LocalFleetGroup(
                name=f.name, asg_name=f.asg_name, source=f.source, queue_url=f.queue_url
            )
            for f in fleets
        ),
    )


@dataclass(frozen=True)
class LocalInstance:
    instance_id: str
    state: str  # the group's LifecycleState
    protected: bool
    launched_at: float  # EC2 LaunchTime, seconds since the epoch
    # From the warm pool: its warm boot (WARM_BOOT_TAG); None: a cold boot.
    warm_boot_seconds: int | None = None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    def booted_at(self, boot_seconds: int) -> float:
        """When it serves: LaunchTime + its warm boot, or + ``boot_seconds`` (cold)."""
        boot = boot_seconds if self.warm_boot_seconds is None else self.warm_boot_seconds
        return self.launched_at + boot

    def booted(self, now: float, boot_seconds: int) -> bool:
        return self.state == "InService" and now >= self.booted_at(boot_seconds)


def warm_boot_read(tags: list[dict[str, str]]) -> int | None:
    """An instance's warm boot from its EC2 tags; None (a cold boot) without the tag or
    with a value that is not a whole number of seconds up to BOOT_SECONDS_MAX."""
    for tag in tags:
        if tag.get("Key") == WARM_BOOT_TAG:
            value = str(tag.get("Value", "")).strip()
            if value.isascii() and value.isdigit() and int(value) <= BOOT_SECONDS_MAX:
                return int(value)
            return None
    return None


@dataclass(frozen=True)
class LocalGroup:
    name: str
    desired: int
    min_size: int
    max_size: int
    instances: tuple[LocalInstance, ...]

    def running(self) -> list[LocalInstance]:
        return [i for i in self.instances if i.running]


def group_read(autoscaling: Any, ec2: Any, asg_name: str) -> LocalGroup:
    """The group and each instance's launch time; LookupError when the group is missing."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    if not groups["AutoScalingGroups"]:
        raise LookupError(f"group {asg_name} does not exist on the local endpoint")
    group = groups["AutoScalingGroups"][0]
    members = group.get("Instances", [])
    launched: dict[str, float] = {}
    warm: dict[str, int | None] = {}
    if members:
        reply = ec2.describe_instances(InstanceIds=[i["InstanceId"] for i in members])
        for reservation in reply["Reservations"]:
            for instance in reservation["Instances"]:
                stamp: datetime = instance["LaunchTime"]
                launched[instance["InstanceId"]] = stamp.timestamp()
                warm[instance["InstanceId"]] = warm_boot_read(instance.get("Tags", []))
    return LocalGroup(
        name=asg_name,
        desired=int(group["DesiredCapacity"]),
        min_size=int(group["MinSize"]),
        max_size=int(group["MaxSize"]),
        instances=tuple(
            LocalInstance(
                instance_id=i["InstanceId"],
                state=i["LifecycleState"],
                protected=bool(i.get("ProtectedFromScaleIn")),
                # An instance EC2 no longer knows has been gone a long time: booted long ago.
                launched_at=launched.get(i["InstanceId"], 0.0),
                warm_boot_seconds=warm.get(i["InstanceId"]),
            )
            for i in members
        ),
    )
