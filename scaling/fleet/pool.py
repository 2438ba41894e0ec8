"""The group's warm pool as the fleet code sees it: which lifecycle states are the pool's,
and its instances read from ``DescribeWarmPool`` (docs/scaling-policy.md, "Warm pools:
lifecycle states and the drain hook", cites AWS's page for each state).

``DescribeAutoScalingGroups`` lists the group's instances, not the pool's: an instance
that waits to return to the pool on scale-in (``ReuseOnScaleIn``) is in the pool's list,
in ``Warmed:Pending:Wait`` under our termination hook. ``DescribeWarmPool`` answers at
most 50 instances a call; ``POOL_PAGES`` pages at most (a pool of 200), so one read
stays inside a slot's budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WARMED_PREFIX = "Warmed:"
# An instance returning to the pool on scale-in waits here for EC2_INSTANCE_TERMINATING
# hooks (ours among them); one entering the pool waits here for launching hooks.
POOL_WAIT = "Warmed:Pending:Wait"
POOL_PAGE = 50  # DescribeWarmPool's MaxRecords limit
POOL_PAGES = 4


def in_pool(state: str) -> bool:
    """Whether a LifecycleState is one of the warm pool's (``Warmed:*``)."""
    return state.startswith(WARMED_PREFIX)


@dataclass(frozen=True)
class PoolAnswer:
    """DescribeWarmPool's answer, its pages joined."""

    configuration: dict[str, Any] | None  # None: the group has no warm pool
    instances: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True  # False: more than POOL_PAGES pages; the rest not read


def warm_pool_describe(client: Any, asg_name: str, *, pages: int = POOL_PAGES) -> PoolAnswer:
    """The pool's configuration and instances; raises what boto3 raised."""
    instances: list[dict[str, Any]] = []
    configuration: dict[str, Any] | None = None
    token = ""
    for _ in range(pages):
        params: dict[str, Any] = {"AutoScalingGroupName": asg_name, "MaxRecords": POOL_PAGE}
        if token:
            params["NextToken"] = token
        answer = client.describe_warm_pool(**params)
        configuration = answer.get("WarmPoolConfiguration") or configuration
        instances += answer.get("Instances", [])
        token = answer.get("NextToken") or ""
        if not token:
            return PoolAnswer(configuration, instances)
    return PoolAnswer(configuration, instances, complete=False)
