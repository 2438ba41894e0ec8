"""What AWS holds for the group now, read before any write (and the checks that go first).

``scaling.policy.install`` compares it with what the requests would install.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from scaling.aws import aws_credentials_present
from scaling.errors import error_text
from scaling.policy.alarms import alarm_names
from scaling.policy.dashboard import dashboard_name
from scaling.policy.hook import hook_describe, hook_installed
from scaling.policy.options import PolicyError
from scaling.policy.requests import (
    GROUP_METRICS,
    METRICS_TAG_KEY,
    PREDICTIVE_POLICY_NAME,
    TARGET_POLICY_NAME,
    WAKE_POLICY_NAME,
    wake_alarm_name,
)
from scaling.policy.warm_pool import warm_pool_describe


def aws_call(operation: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        message = error_text(exc)[:400].rstrip(".")
        raise PolicyError(f"AWS call {operation} failed: {message}.") from exc


@dataclass
class Current:
    group: dict[str, Any]
    policies: dict[str, dict[str, Any]]
    alarm: dict[str, Any] | None
    alarms: dict[str, dict[str, Any]]  # the five, by name (scaling.policy.alarms)
    dashboard: dict[str, Any] | None  # its body, parsed
    # The termination lifecycle hook, cut to the fields the command sets (None: absent).
    hook: dict[str, Any] | None = None
    # The group's WarmPoolConfiguration as AWS holds it, Status included (None: no pool).
    warm_pool: dict[str, Any] | None = None


def dashboard_read(cloudwatch: Any, name: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        try:
            body = cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFound":
                return None
            raise
        return dict(json.loads(body))

    found: dict[str, Any] | None = aws_call("GetDashboard", read)
    return found


def current_read(*, asg_name: str, region: str, autoscaling: Any, cloudwatch: Any) -> Current:
    """Checks before any write: credentials, then the group in this region."""
    if not aws_credentials_present():
        raise PolicyError(
            "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with an instance role."
        )
    groups = aws_call(
        "DescribeAutoScalingGroups",
        lambda: autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name]),
    )["AutoScalingGroups"]
    if not groups:
        # moto (and a typo) would otherwise accept a policy for a group that is not there.
        raise PolicyError(f"Auto Scaling group {asg_name!r} does not exist in region {region}.")
    response = aws_call(
        "DescribePolicies",
        lambda: autoscaling.describe_policies(
            AutoScalingGroupName=asg_name,
            PolicyNames=[TARGET_POLICY_NAME, WAKE_POLICY_NAME, PREDICTIVE_POLICY_NAME],
        ),
    )
    policies = {p["PolicyName"]: p for p in response["ScalingPolicies"]}
    wake_name = wake_alarm_name(asg_name)
    found = aws_call(
        "DescribeAlarms",
        lambda: cloudwatch.describe_alarms(AlarmNames=[wake_name, *alarm_names(asg_name).values()]),
    )["MetricAlarms"]
    alarms = {a["AlarmName"]: a for a in found}
    return Current(
        group=groups[0],
        policies=policies,
        alarm=alarms.pop(wake_name, None),
        alarms=alarms,
        dashboard=dashboard_read(cloudwatch, dashboard_name(asg_name)),
        hook=_hook_read(autoscaling, asg_name),
        warm_pool=aws_call("DescribeWarmPool", lambda: warm_pool_describe(autoscaling, asg_name)),
    )


def group_policies_read(autoscaling: Any, asg_name: str) -> list[dict[str, Any]]:
    """Every scaling policy of the group, whatever its name (--check looks there for ours
    under the name a CloudFormation stack gave it: scaling.policy.check)."""

    def read() -> list[dict[str, Any]]:
        pages = autoscaling.get_paginator("describe_policies").paginate(
            AutoScalingGroupName=asg_name
        )
        return [dict(policy) for page in pages for policy in page["ScalingPolicies"]]

    found: list[dict[str, Any]] = aws_call("DescribePolicies", read)
    return found


def _hook_read(autoscaling: Any, asg_name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = aws_call(
        "DescribeLifecycleHooks", lambda: hook_describe(autoscaling, asg_name)
    )
    return None if found is None else hook_installed(found)


def metrics_enabled(group: Mapping[str, Any]) -> set[str]:
    return {str(m.get("Metric")) for m in group.get("EnabledMetrics", [])}


def metrics_tagged(group: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The metrics the tag says this command enabled; None without the tag."""
    for tag in group.get("Tags", []):
        if tag.get("Key") == METRICS_TAG_KEY:
            return tuple(str(tag.get("Value", "")).split())
    return None


def outside_note(group: Mapping[str, Any], what: str) -> str:
    tagged = metrics_tagged(group) or ()
    outside = [m for m in GROUP_METRICS if m in metrics_enabled(group) and m not in tagged]
    return f"{', '.join(outside)} {what}" if outside else ""
