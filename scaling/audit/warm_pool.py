"""The group's warm pool as people read it: its configuration and its instances by state.

One ``DescribeWarmPool`` (``scaling.fleet.pool``: paged, bounded) on the status role,
which may call it (deploy/iam/status.json). A group without a pool answers no
configuration: ``WarmPool(configured=False)``, "none".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scaling.fleet.pool import in_pool, warm_pool_describe


@dataclass(frozen=True)
class PoolMember:
    instance_id: str
    state: str  # Warmed:Stopped, Warmed:Pending:Wait, ...


@dataclass(frozen=True)
class WarmPool:
    """Field names are the keys of ``scaling_status --json``'s ``warm_pool``."""

    configured: bool
    min_size: int | None = None
    max_group_prepared_capacity: int | None = None  # None: AWS's default (the group's max)
    pool_state: str | None = None  # Stopped | Running | Hibernated
    status: str | None = None  # PendingDelete while AWS deletes it
    reuse_on_scale_in: bool = False
    instances: list[PoolMember] = field(default_factory=list)
    complete: bool = True  # False: more instances than one read lists

    @property
    def by_state(self) -> dict[str, int]:
        return dict(sorted(Counter(m.state for m in self.instances).items()))


def warm_pool_of(configuration: dict[str, Any] | None, instances: list[dict[str, Any]]) -> WarmPool:
    if not configuration:
        return WarmPool(configured=False)
    reuse = (configuration.get("InstanceReusePolicy") or {}).get("ReuseOnScaleIn")
    return WarmPool(
        configured=True,
        min_size=configuration.get("MinSize"),
        max_group_prepared_capacity=configuration.get("MaxGroupPreparedCapacity"),
        pool_state=configuration.get("PoolState"),
        status=configuration.get("Status"),
        reuse_on_scale_in=bool(reuse),
        instances=sorted(
            (
                PoolMember(str(i["InstanceId"]), str(i.get("LifecycleState", "")))
                for i in instances
                if in_pool(str(i.get("LifecycleState", "")))
            ),
            key=lambda m: m.instance_id,
        ),
    )


def warm_pool_read(autoscaling: Any, asg_name: str) -> WarmPool:
    answer = warm_pool_describe(autoscaling, asg_name)
    pool = warm_pool_of(answer.configuration, answer.instances)
    if not answer.complete:
        pool = WarmPool(**{**pool.__dict__, "complete": False})
    return pool


def warm_pool_line(pool: WarmPool) -> str:
    """ "Warm pool: ..." in one line (scaling_status's text)."""
    if not pool.configured:
        return "Warm pool: none (install_scaling_policy --warm-pool adds one)."
    prepared = (
        "the group's max"
        if pool.max_group_prepared_capacity in (None, -1)
        else str(pool.max_group_prepared_capacity)
    )
    states = ", ".join(f"{n} {state}" for state, n in pool.by_state.items()) or "no instances"
    more = " (more not listed)" if not pool.complete else ""
    deleting = f"; {pool.status}" if pool.status else ""
    return (
        f"Warm pool: min {pool.min_size}, max group prepared capacity {prepared}, pool state "
        f"{pool.pool_state}, reuse on scale-in {'yes' if pool.reuse_on_scale_in else 'no'}"
        f"{deleting}; {len(pool.instances)} instance{'s' if len(pool.instances) != 1 else ''}"
        f"{more}: {states}."
    )
