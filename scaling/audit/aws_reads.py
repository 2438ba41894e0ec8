"""The AWS reads behind ``scaling_status`` and the admin: the group, its policies, alarms.

Each returns what it read or raises what boto3 raised; ``scaling.audit.part``
turns a failure into one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scaling.audit.aws_errors import GroupMissing
from scaling.aws import sqs_client
from scaling.conf import scaling_settings
from scaling.policy.installed import ScalingPolicy, policies_parse


@dataclass(frozen=True)
class Group:
    min: int
    max: int
    desired: int
    in_service: int
    enabled_metrics: list[str]


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str | None
    since: str | None  # when it entered that state (ISO 8601, UTC)
    for_seconds: int | None  # how long it has been in it, when read


def group_describe(autoscaling: Any, asg_name: str) -> dict[str, Any]:
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"
    ]
    if not groups:
        raise GroupMissing(asg_name, scaling_settings().region)
    return dict(groups[0])


def group_of(group: dict[str, Any]) -> Group:
    return Group(
        min=group["MinSize"],
        max=group["MaxSize"],
        desired=group["DesiredCapacity"],
        in_service=sum(
            1 for i in group.get("Instances", []) if i.get("LifecycleState") == "InService"
        ),
        enabled_metrics=sorted(m["Metric"] for m in group.get("EnabledMetrics", [])),
    )


def policies_describe(autoscaling: Any, asg_name: str) -> list[dict[str, Any]]:
    """DescribePolicies' ``ScalingPolicies`` for the group, as AWS answers them."""
    return list(autoscaling.describe_policies(AutoScalingGroupName=asg_name)["ScalingPolicies"])


def policies_read(autoscaling: Any, asg_name: str) -> list[ScalingPolicy]:
    return policies_parse(policies_describe(autoscaling, asg_name))


def alarm_of(alarm: dict[str, Any], now: datetime) -> Alarm:
    # StateTransitionedTimestamp moves only when the state changes (StateUpdated also
    # when the reason is rewritten); moto gives only the latter.
    since = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    if not isinstance(since, datetime):
        return Alarm(alarm["AlarmName"], alarm.get("StateValue"), None, None)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    seconds = max(0, int((now - since).total_seconds()))
    return Alarm(alarm["AlarmName"], alarm.get("StateValue"), since.isoformat(), seconds)


def alarms_read(cloudwatch: Any, names: list[str]) -> list[Alarm]:
    """In the order asked: the wake alarm, the five of scaling.policy.alarms, then AWS's."""
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    now = datetime.now(UTC)
    alarms.sort(key=lambda a: names.index(a["AlarmName"]) if a["AlarmName"] in names else 0)
    return [alarm_of(a, now) for a in alarms]


def queue_depth_read(queue_url: str) -> tuple[int, int]:
    """(visible, in flight) of an SQS queue: the live backlog of a fleet measured by it.

    The publisher's own read (role "publisher", short timeouts): the endpoint runs in
    the API stack, whose role reads the fleets' queues anyway.
    """
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )
