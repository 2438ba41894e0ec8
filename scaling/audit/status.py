"""What is published, installed and running, read part by part.

Each part is read on its own and fails on its own: a database or AWS outage
turns that part into one sentence and leaves the others standing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from scaling.audit.aws_errors import GroupMissing, error_sentence
from scaling.audit.fleet import DrainHook, Fleet, drain_hook_read, fleet_of, fleet_work_read
from scaling.audit.leases import Leases, leases_read
from scaling.audit.serialise import BacklogCounts, PublicationRow, backlog_counts, publication_row
from scaling.audit.series import DEFAULT_SLOTS, SlotRow, slot_rows_read
from scaling.aws import autoscaling_client, cloudwatch_client
from scaling.conf import scaling_settings
from scaling.policy.aim import capacity_aim
from scaling.policy.alarms import alarm_names
from scaling.policy.requests import TARGET_POLICY_NAME, wake_alarm_name
from scaling.port import backlog_source
from scaling.selectors import publications_recent

T = TypeVar("T")
RECENT_PUBLICATIONS = 5
# A part's error shares a line with its label: long enough for an AWS message.
_ERROR_LIMIT = 300


@dataclass(frozen=True)
class Part(Generic[T]):
    """One part of the status: what was read, or the one line that says why not."""

    data: T | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        # Every reader returns a value (an empty list at least): None means it failed.
        return self.data is not None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


# The parts' data. Field names are the keys of ``scaling_status --json``.


@dataclass(frozen=True)
class Group:
    min: int
    max: int
    desired: int
    in_service: int
    enabled_metrics: list[str]


@dataclass(frozen=True)
class Policy:
    name: str
    type: str | None
    target_value: float | None
    mode: str | None  # "per-instance", "total", or None when it tracks no backlog metric
    tracks: str | None
    warmup_seconds: int | None
    alarms: list[str]


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str | None
    since: str | None  # when it entered that state (ISO 8601, UTC)
    for_seconds: int | None  # how long it has been in it, when read


@dataclass(frozen=True)
class Agreement:
    published: int | None
    slot_start: str
    database_now: int
    agrees: bool


@dataclass(frozen=True)
class AimEstimate:
    instances: int
    rule: str


@dataclass(frozen=True)
class Aim(AimEstimate):
    backlog: int
    basis: str  # where the backlog came from: "database now" or "latest publication"


def _part(read: Callable[[], T], *, errors: tuple[type[BaseException], ...]) -> Part[T]:
    try:
        return Part(data=read())
    except errors as exc:
        # An AWS failure as what to change (aws_errors); anything else as ``Type: message``.
        return Part(error=error_sentence(exc, limit=_ERROR_LIMIT))


_AWS_ERRORS = (BotoCoreError, ClientError, ResponseParserError)


def _backlog_read() -> BacklogCounts:
    return backlog_counts(backlog_source().backlog_get())


def _publications_read() -> list[PublicationRow]:
    return [publication_row(row) for row in publications_recent(limit=RECENT_PUBLICATIONS)]


def _group_describe(autoscaling: Any, asg_name: str) -> dict[str, Any]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"
    ]
    if not groups:
        raise GroupMissing(asg_name, scaling_settings().region)
    return dict(groups[0])


def _group_of(group: dict[str, Any]) -> Group:
    return Group(
        min=group["MinSize"],
        max=group["MaxSize"],
        desired=group["DesiredCapacity"],
        in_service=sum(
            1 for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"
        ),
        enabled_metrics=sorted(m["Metric"] for m in group.get("EnabledMetrics", [])),
    )


def _policies_read(autoscaling: Any, asg_name: str) -> list[Policy]:
    policies = autoscaling.describe_policies(AutoScalingGroupName=asg_name)["ScalingPolicies"]
    out = []
    for policy in policies:
        config = policy.get("TargetTrackingConfiguration") or {}
        metric = config.get("CustomizedMetricSpecification") or {}
        if "Metrics" in metric:
            tracks = next(
                (m.get("Expression") for m in metric["Metrics"] if m.get("ReturnData")), None
            )
            mode = "per-instance"
        elif "MetricName" in metric:
            tracks = f"{metric.get('Namespace')}/{metric['MetricName']}"
            mode = "total"
        else:
            tracks, mode = None, None
        out.append(
            Policy(
                name=policy["PolicyName"],
                type=policy.get("PolicyType"),
                target_value=config.get("TargetValue"),
                mode=mode,
                tracks=tracks,
                warmup_seconds=policy.get("EstimatedInstanceWarmup"),
                alarms=[a["AlarmName"] for a in policy.get("Alarms", [])],
            )
        )
    return out


def _alarm(alarm: dict[str, Any], now: datetime) -> Alarm:
    # StateTransitionedTimestamp moves only when the state changes (StateUpdated also
    # when the reason is rewritten); moto gives only the latter.
    since = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    if not isinstance(since, datetime):
        return Alarm(alarm["AlarmName"], alarm.get("StateValue"), None, None)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    seconds = max(0, int((now - since).total_seconds()))
    return Alarm(alarm["AlarmName"], alarm.get("StateValue"), since.isoformat(), seconds)


def _alarms_read(cloudwatch: Any, names: list[str]) -> list[Alarm]:
    """In the order asked: the wake alarm, the five of scaling.policy.alarms, then AWS's."""
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    now = datetime.now(UTC)
    alarms.sort(key=lambda a: names.index(a["AlarmName"]) if a["AlarmName"] in names else 0)
    return [_alarm(a, now) for a in alarms]


def aim_estimate(
    *, mode: str | None, target: float, backlog: int, in_service: int, min_size: int, max_size: int
) -> AimEstimate:
    """Where target tracking settles for this backlog: the simulator's rule, with its reason."""
    if mode == "total":
        instances = capacity_aim(
            backlog=backlog, target=target, mode="total", min_size=min_size, max_size=max_size
        )
        if backlog > target:
            rule = (
                f"raw backlog {backlog} stays above target {target:g} however many run, so each "
                f"evaluation multiplies the {in_service} in service"
            )
        else:
            rule = f"raw backlog {backlog} at or below target {target:g}"
    else:
        instances = capacity_aim(
            backlog=backlog,
            target=target,
            mode="per-instance",
            min_size=min_size,
            max_size=max_size,
        )
        rule = f"ceil(backlog {backlog} / target {target:g})"
    return AimEstimate(instances, f"{rule}, within min {min_size} and max {max_size}")


@dataclass
class ScalingStatus:
    asg_name: str
    region: str
    database: Part[BacklogCounts]
    publications: Part[list[PublicationRow]]
    agreement: Part[Agreement]
    group: Part[Group]
    policies: Part[list[Policy]]
    alarms: Part[list[Alarm]]
    aim: Part[Aim]
    # Video work in progress by instance, and the last recoveries (video.selectors).
    leases: Part[Leases] = field(default_factory=lambda: Part(error="not read"))
    # Each instance: lifecycle state, protection, its video (scaling.audit.fleet); the hook.
    fleet: Part[Fleet] = field(default_factory=lambda: Part(error="not read"))
    lifecycle_hook: Part[DrainHook] = field(default_factory=lambda: Part(error="not read"))
    # The last slots, oldest first: backlog and the group as recorded (scaling.audit.series).
    slots: Part[list[SlotRow]] = field(default_factory=lambda: Part(error="not read"))

    def as_json(self) -> dict[str, Any]:
        # Every field after the name and the region is a Part.
        parts = [f.name for f in fields(self)][2:]
        return {
            "asg_name": self.asg_name,
            "region": self.region,
            **{name: getattr(self, name).as_json() for name in parts},
        }


@dataclass(frozen=True)
class InstalledPolicy:
    mode: str
    target: float
    min_size: int
    max_size: int

    def aim(self, backlog: int) -> int:
        return capacity_aim(
            backlog=backlog,
            target=self.target,
            mode=self.mode,
            min_size=self.min_size,
            max_size=self.max_size,
        )


INSTALLED_POLICY_CACHE_SECONDS = 60


def installed_policy_get(*, asg_name: str | None = None) -> InstalledPolicy | str:
    """The installed target tracking policy and the group's bounds, or why they are unknown.

    For pages: one short AWS attempt, remembered for a minute (answer or error),
    so an admin page never waits on AWS more than once a minute.
    """
    name = asg_name or scaling_settings().asg_name
    key = f"scaling:installed-policy:{name}"
    cached = cache.get(key)
    if cached is not None:
        return cast("InstalledPolicy | str", cached)
    result: InstalledPolicy | str
    try:
        autoscaling = autoscaling_client(role="status", for_page=True)
        group = _group_of(_group_describe(autoscaling, name))
        ours = next(
            (p for p in _policies_read(autoscaling, name) if p.name == TARGET_POLICY_NAME),
            None,
        )
        if ours is None or not ours.target_value or ours.mode is None:
            result = (
                f"no {TARGET_POLICY_NAME} policy on {name}: run manage.py install_scaling_policy"
            )
        else:
            result = InstalledPolicy(
                mode=ours.mode,
                target=float(ours.target_value),
                min_size=group.min,
                max_size=group.max,
            )
    except (*_AWS_ERRORS, LookupError) as exc:
        result = f"Installed policy unknown: {error_sentence(exc, limit=_ERROR_LIMIT)}"
    cache.set(key, result, INSTALLED_POLICY_CACHE_SECONDS)
    return result


def scaling_status_get(*, asg_name: str | None = None, slots: int = DEFAULT_SLOTS) -> ScalingStatus:
    conf = scaling_settings()
    name = asg_name or conf.asg_name
    database = _part(_backlog_read, errors=(DatabaseError,))
    now, interval = timezone.now(), conf.interval
    series = _part(
        lambda: slot_rows_read(count=slots, interval=interval, now=now), errors=(DatabaseError,)
    )
    publications = _part(_publications_read, errors=(DatabaseError,))
    agreement = _agreement(database, publications)
    leases = _part(leases_read, errors=(DatabaseError,))
    work = _part(fleet_work_read, errors=(DatabaseError,))
    try:
        autoscaling = autoscaling_client(role="status")
        cloudwatch = cloudwatch_client(for_command=True, role="status")
    except _AWS_ERRORS as exc:  # e.g. no region configured
        # Every AWS part is down for the same reason; Any lets one Part stand for each.
        down: Part[Any] = Part(error=error_sentence(exc, limit=_ERROR_LIMIT))
        return ScalingStatus(
            name, conf.region, database, publications, agreement, down, down, down, down, leases,
            down, down, series,
        )  # fmt: skip
    # One DescribeAutoScalingGroups: the capacity and the fleet.
    described = _part(
        lambda: _group_describe(autoscaling, name), errors=(*_AWS_ERRORS, LookupError)
    )
    group: Part[Group] = Part(error=described.error)
    fleet: Part[Fleet] = Part(error=described.error)
    if described.data is not None:
        group = Part(data=_group_of(described.data))
        instances = described.data.get("Instances", [])
        fleet = Part(data=fleet_of(instances, work.data, "" if work.ok else work.error))
    hook = _part(lambda: drain_hook_read(autoscaling, name), errors=_AWS_ERRORS)
    policies = _part(lambda: _policies_read(autoscaling, name), errors=_AWS_ERRORS)
    names = [wake_alarm_name(name), *alarm_names(name).values()]
    if policies.data is not None:
        names += [a for p in policies.data for a in p.alarms]
    alarms = _part(lambda: _alarms_read(cloudwatch, names), errors=_AWS_ERRORS)
    aim = _aim(database, publications, group, policies)
    return ScalingStatus(
        name, conf.region, database, publications, agreement, group, policies, alarms, aim, leases,
        fleet, hook, series,
    )  # fmt: skip


def _agreement(
    database: Part[BacklogCounts], publications: Part[list[PublicationRow]]
) -> Part[Agreement]:
    if database.data is None or publications.data is None:
        return Part(error="needs the database")
    published = [p for p in publications.data if p.status == "published"]
    if not published:
        return Part(error="nothing published yet")
    latest = published[0]
    now = database.data.total
    return Part(
        data=Agreement(
            published=latest.value,
            slot_start=latest.slot_start,
            database_now=now,
            agrees=latest.value == now,
        )
    )


def _aim(
    database: Part[BacklogCounts],
    publications: Part[list[PublicationRow]],
    group: Part[Group],
    policies: Part[list[Policy]],
) -> Part[Aim]:
    if group.data is None or policies.data is None:
        return Part(error="needs the group and its policies")
    ours = next((p for p in policies.data if p.name == TARGET_POLICY_NAME), None)
    if ours is None or not ours.target_value:
        return Part(error=f"no {TARGET_POLICY_NAME} policy installed")
    if database.data is not None:
        backlog, basis = database.data.total, "database now"
    else:
        known = [p.value for p in publications.data or [] if p.value is not None]
        if not known:
            return Part(error="no backlog known: database down, nothing published")
        backlog, basis = known[0], "latest publication"
    g = group.data
    estimate = aim_estimate(
        mode=ours.mode,
        target=float(ours.target_value),
        backlog=backlog,
        in_service=g.in_service,
        min_size=g.min,
        max_size=g.max,
    )
    return Part(data=Aim(**asdict(estimate), backlog=backlog, basis=basis))
