"""The termination lifecycle hook: the request that installs it, and its read-back.

A termination hook holds an instance the group is about to terminate in
``Terminating:Wait`` until the reconciler completes the action (the instance's
last video is finished) or ``HeartbeatTimeout`` passes with no heartbeat; then
``DefaultResult`` CONTINUE lets the termination go on. The hook's name is the
reconciler's (``scaling.fleet.hook``).

The timeout (``--drain-timeout``, checked in ``scaling.policy.options``)
defaults to two leases (``VIDEO_LEASE_SECONDS``), within the 30..7200 s AWS
allows: the reconciler records a heartbeat once per slot while the instance
holds a live lease, so the timeout only has to outlast the gap between two
reconciler runs; two leases survive a missed run, and when the API stack is
down for longer the instance goes after two leases and its video is recovered
as any lost lease is (one lease plus one slot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.policy.requests import ApiRequest

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
# The fields this command sets: the only ones compared with what AWS holds (AWS adds
# GlobalTimeout; moto also reports a made-up NotificationTargetARN and RoleARN).
HOOK_FIELDS = (
    "LifecycleHookName",
    "AutoScalingGroupName",
    "LifecycleTransition",
    "HeartbeatTimeout",
    "DefaultResult",
)


def hook_request_build(*, asg_name: str, drain_timeout_seconds: int) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "PutLifecycleHook",
        {
            "LifecycleHookName": LIFECYCLE_HOOK_NAME,
            "AutoScalingGroupName": asg_name,
            "LifecycleTransition": TERMINATING,
            "HeartbeatTimeout": drain_timeout_seconds,
            "DefaultResult": "CONTINUE",
        },
    )


def hook_delete_request_build(*, asg_name: str) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "DeleteLifecycleHook",
        {"LifecycleHookName": LIFECYCLE_HOOK_NAME, "AutoScalingGroupName": asg_name},
    )


def hook_installed(described: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeLifecycleHooks entry cut to the fields this command sets."""
    return {key: described[key] for key in HOOK_FIELDS if key in described}


def hook_describe(autoscaling: Any, asg_name: str) -> dict[str, Any] | None:
    """The hook as AWS describes it (every field), or None when the group has none."""
    hooks = autoscaling.describe_lifecycle_hooks(
        AutoScalingGroupName=asg_name, LifecycleHookNames=[LIFECYCLE_HOOK_NAME]
    )["LifecycleHooks"]
    return dict(hooks[0]) if hooks else None
