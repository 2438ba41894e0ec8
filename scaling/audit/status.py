"""What is published, installed and running, read part by part: the assembly.

Each part is read on its own and fails on its own (``scaling.audit.part``): a
database or AWS outage turns that part into one sentence and leaves the others
standing. The AWS reads are ``scaling.audit.aws_reads``, the aim's wording
``scaling.audit.aim_text``; ``ScalingStatus`` is what ``scaling_status`` prints
(``scaling.audit.report``) and serialises.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from scaling.audit.aim_text import Aim, aim_part
from scaling.audit.aws_errors import error_sentence
from scaling.audit.aws_reads import (
    Alarm,
    Group,
    alarms_read,
    group_describe,
    group_of,
    policies_describe,
)
from scaling.audit.fleet import DrainHook, Fleet, drain_hook_read, fleet_of, fleet_work_read
from scaling.audit.forecast import Forecast, forecast_ahead
from scaling.audit.leases import Leases, leases_read, work_untracked
from scaling.audit.part import AWS_ERRORS, ERROR_LIMIT, Part, part_read
from scaling.audit.serialise import BacklogCounts, PublicationRow, backlog_counts, publication_row
from scaling.audit.series import DEFAULT_SLOTS, SlotRow, slot_rows_read
from scaling.audit.warm_pool import WarmPool, warm_pool_read
from scaling.aws import autoscaling_client, cloudwatch_client
from scaling.conf import ScalingSettings, scaling_settings
from scaling.fleets import Fleet as FleetConfig
from scaling.models import ScalingPause
from scaling.policy.alarms import alarm_names
from scaling.policy.installed import ScalingPolicy, policies_parse
from scaling.policy.pause import (
    PauseError,
    pause_active,
    pause_json,
    scale_in_disabled,
    target_policy_read,
)
from scaling.policy.requests import wake_alarm_name
from scaling.port import backlog_source
from scaling.selectors import publications_recent

RECENT_PUBLICATIONS = 5


def _not_read() -> Part[Any]:
    return Part(error="not read")


@dataclass(frozen=True)
class Agreement:
    published: int | None
    slot_start: str
    database_now: int
    agrees: bool


@dataclass(frozen=True)
class PauseShown:
    """The fleet's active scale-in pause (scaling.policy.pause) and whether AWS holds it."""

    row: ScalingPause
    # The policy's DisableScaleIn: True in force; False the policy scales in (re-installed
    # during the pause); None not known (``note`` says why).
    in_force: bool | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**pause_json(self.row), "in_force": self.in_force, "note": self.note}


@dataclass
class ScalingStatus:
    """Field names are the keys of ``scaling_status --json``, in its order."""

    asg_name: str
    region: str
    database: Part[BacklogCounts]
    publications: Part[list[PublicationRow]]
    agreement: Part[Agreement]
    group: Part[Group]
    policies: Part[list[ScalingPolicy]]
    alarms: Part[list[Alarm]]
    aim: Part[Aim]
    # Video work in progress by instance, and the last recoveries (video.selectors).
    leases: Part[Leases] = field(default_factory=_not_read)
    # Each instance: lifecycle state, protection, its video (scaling.audit.fleet); the hook.
    fleet: Part[Fleet] = field(default_factory=_not_read)
    lifecycle_hook: Part[DrainHook] = field(default_factory=_not_read)
    # The last slots, oldest first: backlog and the group as recorded (scaling.audit.series).
    slots: Part[list[SlotRow]] = field(default_factory=_not_read)
    # The group's warm pool (DescribeWarmPool): its configuration, its instances by state.
    warm_pool: Part[WarmPool] = field(default_factory=_not_read)
    # The predictive policy and AWS's forecast for the next 24 h, or its ``reason``.
    predictive: Part[Forecast] = field(default_factory=_not_read)
    # Whose status this is (scaling.fleets); None: read without a fleet (the default's
    # settings). Not a key of ``as_json``: ``fleet_json`` adds it (``fleet`` is the
    # instances' part, so the fleet's own keys are ``fleet_name`` and ``fleet_config``).
    of_fleet: FleetConfig | None = None
    # Its workers hold no leases while the port has lease hooks (an SQS fleet, or a
    # port fleet configured without): no work by instance, no drain hook needed.
    untracked: bool = False
    # Its active scale-in pause, or None (none, or not read: ``pause_error`` says why).
    pause: PauseShown | None = None
    pause_error: str = ""

    def as_json(self) -> dict[str, Any]:
        parts = [f.name for f in fields(self) if isinstance(getattr(self, f.name), Part)]
        return {
            "asg_name": self.asg_name,
            "region": self.region,
            **{name: getattr(self, name).as_json() for name in parts},
            "pause": None if self.pause is None else self.pause.as_json(),
            "pause_error": self.pause_error,
        }

    def fleet_json(self) -> dict[str, Any]:
        """One entry of ``scaling_status --json``'s ``fleets``: these keys and the fleet."""
        f = self.of_fleet
        return {
            **self.as_json(),
            "fleet_name": None if f is None else f.name,
            "fleet_config": None if f is None else f.describe(),
        }

    @property
    def from_queue(self) -> bool:
        """The fleet's backlog is its SQS queue's depth (no database count to show)."""
        return self.of_fleet is not None and self.of_fleet.source == "sqs"


def _backlog_read() -> BacklogCounts:
    return backlog_counts(backlog_source().backlog_get())


def _publications_read(fleet: str) -> list[PublicationRow]:
    rows = publications_recent(limit=RECENT_PUBLICATIONS, fleet=fleet)
    return [publication_row(row) for row in rows]


def queue_measured(fleet: FleetConfig) -> str:
    """Why an SQS-measured fleet's status has no database count (its ``database`` part)."""
    return (
        f"not read: fleet {fleet.name} is measured by its SQS queue's depth, which "
        "scaling_status does not read (the last slots show what was published)"
    )


def _no_leases(fleet: FleetConfig) -> str:
    return f"off: fleet {fleet.name}'s workers hold no leases (source {fleet.source})"


def pause_shown_read(fleet: str) -> tuple[PauseShown | None, str]:
    """The fleet's active pause with its policy's DisableScaleIn (one DescribePolicies,
    only while paused), or None and why it could not be read."""
    try:
        row = pause_active(fleet)
    except DatabaseError as exc:
        return None, error_sentence(exc, limit=ERROR_LIMIT)
    if row is None:
        return None, ""
    try:
        policy = target_policy_read(autoscaling_client(role="status"), row.asg_name)
    except (PauseError, *AWS_ERRORS) as exc:
        return PauseShown(row, None, f"policy not read: {str(exc)[:ERROR_LIMIT]}"), ""
    if policy is None:
        return PauseShown(row, None, f"no target tracking policy on {row.asg_name}"), ""
    return PauseShown(row, scale_in_disabled(policy)), ""


def scaling_status_get(
    *,
    asg_name: str | None = None,
    slots: int = DEFAULT_SLOTS,
    fleet: FleetConfig | None = None,
    conf: ScalingSettings | None = None,
) -> ScalingStatus:
    """One fleet's status (``fleet``: its group, metric and rows; None: the settings')."""
    conf = conf or (fleet.conf() if fleet is not None else scaling_settings())
    name = asg_name or conf.asg_name
    fleet_name = conf.fleet
    database: Part[BacklogCounts]
    if fleet is not None and fleet.source == "sqs":
        database = Part(error=queue_measured(fleet))
    else:
        database = part_read(_backlog_read, errors=(DatabaseError,))
    now, interval = timezone.now(), conf.interval
    series = part_read(
        lambda: slot_rows_read(count=slots, interval=interval, now=now, fleet=fleet_name),
        errors=(DatabaseError,),
    )
    publications = part_read(lambda: _publications_read(fleet_name), errors=(DatabaseError,))
    leases: Part[Leases]
    work: Part[Any]
    # A port without lease hooks says so itself (leases_read), as with one fleet.
    untracked = fleet is not None and work_untracked(fleet)
    if fleet is not None and untracked:
        leases = Part(data=Leases(instances=[], recoveries=[], off=_no_leases(fleet)))
        work = Part(error=f"not tracked: fleet {fleet.name}'s workers hold no leases")
    else:
        leases = part_read(leases_read, errors=(DatabaseError,))
        work = part_read(fleet_work_read, errors=(DatabaseError,))
    group: Part[Group]
    members: Part[Fleet]
    try:
        autoscaling = autoscaling_client(role="status")
        cloudwatch = cloudwatch_client(for_command=True, role="status")
    except AWS_ERRORS as exc:  # e.g. no region configured
        # Every AWS part is down for the same reason; Any lets one Part stand for each.
        down: Part[Any] = Part(error=error_sentence(exc, limit=ERROR_LIMIT))
        group = members = hook = policies = alarms = aim = pool = predictive = down
    else:
        # One DescribeAutoScalingGroups: the capacity and the fleet.
        described = part_read(
            lambda: group_describe(autoscaling, name), errors=(*AWS_ERRORS, LookupError)
        )
        # No group, no pool to ask about (moto answers a missing group's pool with a 500).
        pool = (
            part_read(lambda: warm_pool_read(autoscaling, name), errors=AWS_ERRORS)
            if described.data is not None
            else Part(error=described.error)
        )
        group, members = Part(error=described.error), Part(error=described.error)
        if described.data is not None:
            group = Part(data=group_of(described.data))
            instances = described.data.get("Instances", [])
            in_pool = [
                {"InstanceId": m.instance_id, "LifecycleState": m.state}
                for m in (pool.data.instances if pool.data is not None else [])
            ]
            roster = fleet_of(instances, work.data, "" if work.ok else work.error, in_pool)
            members = Part(data=roster)
        hook = part_read(lambda: drain_hook_read(autoscaling, name), errors=AWS_ERRORS)
        # One DescribePolicies: the policies listed, and the predictive one's forecast.
        described_policies = part_read(
            lambda: policies_describe(autoscaling, name), errors=AWS_ERRORS
        )
        policies = Part(error=described_policies.error)
        if described_policies.data is not None:
            policies = Part(data=policies_parse(described_policies.data))
        predictive = Part(error=described_policies.error)
        if described_policies.data is not None:
            forecast = forecast_ahead(autoscaling, name, policies=described_policies.data)
            predictive = Part(data=forecast)
        names = [wake_alarm_name(name), *alarm_names(name).values()]
        if policies.data is not None:
            names += [a for p in policies.data for a in p.alarms]
        alarms = part_read(lambda: alarms_read(cloudwatch, names), errors=AWS_ERRORS)
        aim = aim_part(database, publications, group, policies)
    pause, pause_error = pause_shown_read(fleet_name)
    return ScalingStatus(
        asg_name=name,
        region=conf.region,
        database=database,
        publications=publications,
        agreement=(
            Part(error=f"fleet {fleet.name} is measured by its SQS queue, not the database")
            if fleet is not None and fleet.source == "sqs"
            else _agreement(database, publications)
        ),
        group=group,
        policies=policies,
        alarms=alarms,
        aim=aim,
        leases=leases,
        fleet=members,
        lifecycle_hook=hook,
        slots=series,
        warm_pool=pool,
        predictive=predictive,
        of_fleet=fleet,
        untracked=untracked,
        pause=pause,
        pause_error=pause_error,
    )


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
