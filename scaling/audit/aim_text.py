"""Where target tracking settles for the backlog, worded: the status's aim part."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scaling.audit.aws_reads import Group
from scaling.audit.part import Part
from scaling.audit.serialise import BacklogCounts, PublicationRow
from scaling.policy.aim import capacity_aim
from scaling.policy.installed import ScalingPolicy
from scaling.policy.requests import TARGET_POLICY_NAME


@dataclass(frozen=True)
class AimEstimate:
    instances: int
    rule: str


@dataclass(frozen=True)
class Aim(AimEstimate):
    backlog: int
    basis: str  # where the backlog came from: "database now" or "latest publication"


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


def aim_part(
    database: Part[BacklogCounts],
    publications: Part[list[PublicationRow]],
    group: Part[Group],
    policies: Part[list[ScalingPolicy]],
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
