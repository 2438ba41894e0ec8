"""The fleet as people read it: each instance of the group, its lifecycle state,
whether it is protected from scale-in, and the video it works on and for how long;
and the termination lifecycle hook that lets a busy instance drain.

The instances come from the one ``DescribeAutoScalingGroups`` answer that
``scaling_status`` reads for the group's capacity (role "status"); the videos from
the backlog source's lease hooks (``scaling.port``: the lease's instance, its clock).
An instance that holds a lease but is not in the group (terminated, or a worker
run by hand) is listed too, as "not in the group".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from django.core.cache import cache
from django.db import DatabaseError

from scaling.audit.aws_errors import error_sentence
from scaling.aws import autoscaling_client
from scaling.conf import scaling_settings
from scaling.errors import error_one_line
from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.fleet.pool import in_pool, warm_pool_describe
from scaling.policy.hook import hook_describe
from scaling.port import WorkInProgress, lease_hooks

NOT_IN_GROUP = "not in the group"
# The admin page reads the group at most this often (answer or error): a page never
# waits on AWS more than once in this long, and the states shown are this fresh.
FLEET_CACHE_SECONDS = 15
_ERROR_LIMIT = 300
WORK_LIMIT = 500  # in-progress items listed (the longest running first)


@dataclass(frozen=True)
class Work:
    video_id: int
    seconds: int | None  # since processing started (None: unknown)


@dataclass(frozen=True)
class FleetInstance:
    instance_id: str  # "" for PROCESSING videos whose lease names no instance ("(no lease)")
    state: str  # the LifecycleState (InService, Terminating:Wait, ...) or NOT_IN_GROUP
    protected: bool | None  # ProtectedFromScaleIn; None when not in the group
    videos: list[Work]
    in_pool: bool = False  # in the group's warm pool (state Warmed:*, DescribeWarmPool)


@dataclass(frozen=True)
class Fleet:
    instances: list[FleetInstance]
    work_error: str = ""  # why the videos are unknown ("" when the database answered)
    pool_error: str = ""  # why the warm pool's instances are not listed ("" when they are)

    @property
    def in_group(self) -> int:
        return sum(1 for i in self.instances if i.state != NOT_IN_GROUP and not i.in_pool)

    @property
    def busy(self) -> int:
        return sum(1 for i in self.instances if i.state != NOT_IN_GROUP and i.videos)

    @property
    def pooled(self) -> int:
        return sum(1 for i in self.instances if i.in_pool)

    @property
    def protected(self) -> int:
        return sum(1 for i in self.instances if i.protected)


@dataclass(frozen=True)
class DrainHook:
    name: str
    installed: bool
    transition: str | None = None
    heartbeat_timeout: int | None = None
    default_result: str | None = None
    global_timeout: int | None = None


def fleet_of(
    instances: Sequence[Mapping[str, Any]],
    work: Sequence[WorkInProgress] | None,
    work_error: str = "",
    pool: Sequence[Mapping[str, Any]] = (),
) -> Fleet:
    """The group's instances (by id) with their videos, then the warm pool's (``pool``:
    DescribeWarmPool's instances), then lease holders outside both."""
    videos: dict[str, list[Work]] = {}
    for row in work or ():
        videos.setdefault(row.instance_id, []).append(Work(row.video_id, row.seconds))
    listed = {str(i["InstanceId"]) for i in instances}
    out = [
        FleetInstance(
            instance_id=str(i["InstanceId"]),
            state=str(i.get("LifecycleState", "?")),
            # AWS protects no pool instance: "-" rather than "no".
            protected=None if pooled else bool(i.get("ProtectedFromScaleIn", False)),
            videos=videos.pop(str(i["InstanceId"]), []),
            in_pool=pooled,
        )
        for i, pooled in sorted(
            [
                *((i, in_pool(str(i.get("LifecycleState", "")))) for i in instances),
                *((p, True) for p in pool if str(p["InstanceId"]) not in listed),
            ],
            key=lambda pair: (pair[1], str(pair[0]["InstanceId"])),
        )
    ]
    out += [FleetInstance(iid, NOT_IN_GROUP, None, held) for iid, held in sorted(videos.items())]
    return Fleet(instances=out, work_error=work_error)


def fleet_work_read() -> list[WorkInProgress]:
    hooks = lease_hooks()
    return [] if hooks is None else hooks.work_in_progress(limit=WORK_LIMIT)


def drain_hook_read(autoscaling: Any, asg_name: str) -> DrainHook:
    """The termination lifecycle hook install_scaling_policy installs (DescribeLifecycleHooks)."""
    found = hook_describe(autoscaling, asg_name)
    if found is None:
        return DrainHook(name=LIFECYCLE_HOOK_NAME, installed=False)
    return DrainHook(
        name=LIFECYCLE_HOOK_NAME,
        installed=True,
        transition=found.get("LifecycleTransition"),
        heartbeat_timeout=found.get("HeartbeatTimeout"),
        default_result=found.get("DefaultResult"),
        global_timeout=found.get("GlobalTimeout"),
    )


_KEYS = ("InstanceId", "LifecycleState", "ProtectedFromScaleIn")


def _instances_cached(asg_name: str) -> tuple[list[dict[str, Any]], str] | str:
    """(the group's instances then its warm pool's, why the pool is not listed) or why
    the group is unknown."""
    key = f"scaling:fleet-instances:{asg_name}"
    cached = cache.get(key)
    if cached is not None:
        return cast("tuple[list[dict[str, Any]], str] | str", cached)
    result: tuple[list[dict[str, Any]], str] | str
    try:
        autoscaling = autoscaling_client(role="status", for_page=True)
        groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
            "AutoScalingGroups"
        ]
        if groups:
            found = [{k: i.get(k) for k in _KEYS} for i in groups[0].get("Instances", [])]
            pool_error = ""
            if groups[0].get("WarmPoolConfiguration"):
                try:
                    pool = warm_pool_describe(autoscaling, asg_name)
                    found += [{k: i.get(k) for k in _KEYS[:2]} for i in pool.instances]
                    if not pool.complete:
                        pool_error = "more pool instances than one read lists"
                except (BotoCoreError, ClientError, ResponseParserError) as exc:
                    pool_error = error_sentence(exc, role="status", limit=_ERROR_LIMIT)
            result = (found, pool_error)
        else:
            result = f"group {asg_name!r} does not exist in region {scaling_settings().region}"
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        result = error_sentence(exc, role="status", limit=_ERROR_LIMIT)
    cache.set(key, result, FLEET_CACHE_SECONDS)
    return result


def fleet_page_get(*, asg_name: str | None = None, leases: bool = True) -> Fleet | str:
    """For pages: the fleet, or the one line that says why it is unknown.

    One short AWS attempt (``for_page``), remembered for FLEET_CACHE_SECONDS;
    the videos are read from the database every time (``leases`` False: a fleet
    whose workers hold none, so no video is theirs and none is read).
    """
    name = asg_name or scaling_settings().asg_name
    cached = _instances_cached(name)
    if isinstance(cached, str):
        return f"fleet unknown ({cached})"
    instances, pool_error = cached
    if not leases:
        return replace(fleet_of(instances, []), pool_error=pool_error)
    try:
        work: list[WorkInProgress] | None = fleet_work_read()
        error = ""
    except DatabaseError as exc:  # the instances still show, without their videos
        work, error = None, error_one_line(exc, limit=_ERROR_LIMIT)
    return replace(fleet_of(instances, work, error), pool_error=pool_error)
