"""Every write request the installer sends, built from ``metric_spec_get()``.

The policy must read exactly the metric the publisher writes (invariant 4), so
each builder takes the spec rather than its own names. EC2 Auto Scaling target
tracking has no cooldowns: no request built here carries ``Cooldown``,
``ScaleOutCooldown`` or ``ScaleInCooldown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from scaling.metric_spec import MetricSpec
from scaling.policy.options import PolicyOptions

TARGET_POLICY_NAME = "academy-backlog-target-tracking"
WAKE_POLICY_NAME = "academy-backlog-wake-from-zero"
# The predictive scaling policy (install_scaling_policy --predictive): beside target
# tracking, on the same published metric.
PREDICTIVE_POLICY_NAME = "academy-backlog-predictive"
IN_SERVICE_METRIC = "GroupInServiceInstances"
# The group metrics this command has collected: the divisor of backlog per instance (and
# the wake alarm's "nothing in service"); the starved alarm's maximum; the dashboard's
# desired capacity. Group metrics at 1-minute granularity cost nothing.
GROUP_METRICS = (IN_SERVICE_METRIC, "GroupDesiredCapacity", "GroupMaxSize")
METRICS_GRANULARITY = "1Minute"
# Marks metrics collection this command enabled (and may therefore disable): its value
# lists those metrics, space-separated.
METRICS_TAG_KEY = "academy:scaling:enabled-metrics"
WAKE_ALARM_PERIOD = 60  # GroupInServiceInstances exists only at 1-minute granularity


def wake_alarm_name(asg_name: str) -> str:
    return f"{asg_name}-backlog-wake-from-zero"


@dataclass(frozen=True)
class ApiRequest:
    service: Literal["autoscaling", "cloudwatch"]
    operation: str  # the API's own name, e.g. PutScalingPolicy
    params: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"service": self.service, "operation": self.operation, "params": self.params}


def _period_fields(spec: MetricSpec) -> dict[str, int]:
    # 60 is the API's default: sending it only for sub-minute periods keeps the
    # request identical to what describe_policies reads back.
    return {"Period": spec.period_seconds} if spec.period_seconds < 60 else {}


def group_metric(asg_name: str, metric_name: str = IN_SERVICE_METRIC) -> dict[str, Any]:
    """An AWS/AutoScaling group metric: its one dimension is the group's name."""
    return {
        "Namespace": "AWS/AutoScaling",
        "MetricName": metric_name,
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg_name}],
    }


def _in_service_metric(asg_name: str) -> dict[str, Any]:
    return group_metric(asg_name)


def published_metric(spec: MetricSpec, metric_name: str | None = None) -> dict[str, Any]:
    """A metric the publisher writes (BacklogCount unless named), with the spec's dimensions."""
    return {
        "Namespace": spec.namespace,
        "MetricName": metric_name or spec.metric_name,
        "Dimensions": spec.dimensions_api(),
    }


def _backlog_metric(spec: MetricSpec) -> dict[str, Any]:
    return published_metric(spec)


def per_instance_expression(spec: MetricSpec) -> str:
    if spec.period_seconds < 60:
        # GroupInServiceInstances has one datapoint a minute: carry it across the
        # sub-minute buckets, or five of six backlog datapoints would have no divisor.
        return "m1 / FILL(m2, REPEAT)"
    return "m1 / m2"


def per_instance_queries(spec: MetricSpec, asg_name: str, *, periods: bool) -> list[dict[str, Any]]:
    """Backlog per in-service instance as metric math (m1 / m2 -> e1): target tracking's
    metric (``periods``: sub-minute periods sent) and predictive scaling's scaling metric
    (no Period: AWS aggregates each hour itself)."""
    period = _period_fields(spec) if periods else {}
    return [
        {
            "Id": "m1",
            "Label": f"{spec.metric_name} (videos waiting or processing)",
            "MetricStat": {
                "Metric": _backlog_metric(spec),
                "Stat": "Average",
                "Unit": spec.unit,
                **period,
            },
            "ReturnData": False,
        },
        {
            "Id": "m2",
            "Label": "In-service instances",
            "MetricStat": {"Metric": _in_service_metric(asg_name), "Stat": "Average", **period},
            "ReturnData": False,
        },
        {
            "Id": "e1",
            "Label": "Backlog per in-service instance",
            "Expression": per_instance_expression(spec),
            "ReturnData": True,
        },
    ]


def target_tracking_configuration_build(
    *, spec: MetricSpec, options: PolicyOptions
) -> dict[str, Any]:
    if options.mode == "total":
        metric: dict[str, Any] = {
            **_backlog_metric(spec),
            "Statistic": "Average",
            "Unit": spec.unit,
            **_period_fields(spec),
        }
    else:
        metric = {"Metrics": per_instance_queries(spec, options.asg_name, periods=True)}
    return {
        "CustomizedMetricSpecification": metric,
        "TargetValue": options.target_value,
        # Target tracking's own scale-in is already slower than the old 300 s intent
        # (see docs/scaling-policy.md), so it keeps scale-in.
        "DisableScaleIn": False,
    }


def target_policy_request_build(*, spec: MetricSpec, options: PolicyOptions) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "PutScalingPolicy",
        {
            "AutoScalingGroupName": options.asg_name,
            "PolicyName": TARGET_POLICY_NAME,
            "PolicyType": "TargetTrackingScaling",
            "EstimatedInstanceWarmup": options.warmup_seconds,
            "Enabled": True,
            "TargetTrackingConfiguration": target_tracking_configuration_build(
                spec=spec, options=options
            ),
        },
    )


def wake_policy_request_build(*, options: PolicyOptions) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "PutScalingPolicy",
        {
            "AutoScalingGroupName": options.asg_name,
            "PolicyName": WAKE_POLICY_NAME,
            "PolicyType": "StepScaling",
            # +1, never an exact capacity: a false alarm can only add an instance,
            # never take capacity away from a group that has some.
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Maximum",
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            # Repeated alarm minutes inside the warmup do not add a second instance.
            "EstimatedInstanceWarmup": options.warmup_seconds,
            "Enabled": True,
        },
    )


def wake_alarm_request_build(
    *, spec: MetricSpec, options: PolicyOptions, wake_policy_arn: str
) -> ApiRequest:
    return ApiRequest(
        "cloudwatch",
        "PutMetricAlarm",
        {
            "AlarmName": wake_alarm_name(options.asg_name),
            "AlarmDescription": (
                f"Videos wait and no instance of {options.asg_name} is in service: add one. "
                "Installed by manage.py install_scaling_policy."
            ),
            "ActionsEnabled": True,
            "AlarmActions": [wake_policy_arn],
            "Metrics": [
                {
                    "Id": "m1",
                    "MetricStat": {
                        "Metric": _backlog_metric(spec),
                        "Period": WAKE_ALARM_PERIOD,
                        "Stat": "Maximum",
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "m2",
                    "MetricStat": {
                        "Metric": _in_service_metric(options.asg_name),
                        "Period": WAKE_ALARM_PERIOD,
                        "Stat": "Maximum",
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "e1",
                    "Label": "Backlog waiting with no instance in service",
                    "Expression": "IF(m1 > 0 AND m2 == 0, 1, 0)",
                    "ReturnData": True,
                },
            ],
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            # No data is never a reason to launch: missing means "do nothing".
            "TreatMissingData": "notBreaching",
        },
    )


def metrics_collection_requests_build(
    *, asg_name: str, enabled_here: tuple[str, ...] = GROUP_METRICS
) -> list[ApiRequest]:
    """Collect every metric of GROUP_METRICS (enabling one twice changes nothing); the tag
    lists ``enabled_here``, those this command enabled, which --uninstall may disable."""
    return [
        ApiRequest(
            "autoscaling",
            "EnableMetricsCollection",
            {
                "AutoScalingGroupName": asg_name,
                "Metrics": list(GROUP_METRICS),
                "Granularity": METRICS_GRANULARITY,
            },
        ),
        ApiRequest(
            "autoscaling",
            "CreateOrUpdateTags",
            {
                "Tags": [
                    {
                        "ResourceId": asg_name,
                        "ResourceType": "auto-scaling-group",
                        "Key": METRICS_TAG_KEY,
                        "Value": " ".join(enabled_here),
                        "PropagateAtLaunch": False,
                    }
                ]
            },
        ),
    ]


def wake_policy_arn_placeholder() -> str:
    return f"<PolicyARN returned for {WAKE_POLICY_NAME}>"


# Uninstall ----------------------------------------------------------------------


def alarm_delete_request_build(*, alarm_name: str) -> ApiRequest:
    return ApiRequest("cloudwatch", "DeleteAlarms", {"AlarmNames": [alarm_name]})


def policy_delete_request_build(*, asg_name: str, policy_name: str) -> ApiRequest:
    # Deleting a target tracking policy also deletes the alarms AWS made for it.
    return ApiRequest(
        "autoscaling",
        "DeletePolicy",
        {"AutoScalingGroupName": asg_name, "PolicyName": policy_name},
    )


def metrics_collection_disable_request_build(
    *, asg_name: str, metrics: tuple[str, ...] = GROUP_METRICS
) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "DisableMetricsCollection",
        {"AutoScalingGroupName": asg_name, "Metrics": list(metrics)},
    )


def group_tag_delete_request_build(*, asg_name: str, key: str) -> ApiRequest:
    """DeleteTags of one of this command's marker tags on the group."""
    return ApiRequest(
        "autoscaling",
        "DeleteTags",
        {"Tags": [{"ResourceId": asg_name, "ResourceType": "auto-scaling-group", "Key": key}]},
    )


def metrics_tag_delete_request_build(*, asg_name: str) -> ApiRequest:
    return group_tag_delete_request_build(asg_name=asg_name, key=METRICS_TAG_KEY)
