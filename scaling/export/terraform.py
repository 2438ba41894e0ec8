"""The stack as Terraform JSON (``.tf.json``) for the hashicorp/aws provider.

Each resource is its request translated field by field: the API's names in
snake_case, with the renames the provider makes (``TF_RENAMES``), list members
as blocks, an alarm's dimensions as a map and its ``MetricStat`` folded into
``metric``. The predictive policy is an ``aws_autoscaling_policy`` with a
``predictive_scaling_configuration`` block; the names follow the provider's schema,
hashicorp/terraform-provider-aws internal/service/autoscaling/policy.go at commit
007ce0a8dd1d97df0e44eeaa5d467b8f1443f4d1 (no terraform binary checks them here). The
group is a variable (``autoscaling_group_name``), never a
resource; the account, partition and region come from data sources.
"""

from __future__ import annotations

import json
import re
from typing import Any

from scaling.export.resources import (
    ACCOUNT,
    GROUP,
    GROUP_NAME_PATTERN,
    PARTITION,
    REGION,
    WAKE_POLICY_ARN,
    WAKE_POLICY_ID,
    Stack,
    placeholder_split,
)
from scaling.policy.requests import ApiRequest

GROUP_VARIABLE = "autoscaling_group_name"
TF_TYPES = {
    "PutScalingPolicy": "aws_autoscaling_policy",
    "PutMetricAlarm": "aws_cloudwatch_metric_alarm",
    "PutDashboard": "aws_cloudwatch_dashboard",
    "PutLifecycleHook": "aws_autoscaling_lifecycle_hook",
}
# (resource type, API key) → the provider's attribute or block, where it is not the
# API's name in snake_case.
TF_RENAMES: dict[tuple[str, str], str] = {
    ("aws_autoscaling_policy", "PolicyName"): "name",
    ("aws_autoscaling_policy", "StepAdjustments"): "step_adjustment",
    ("aws_autoscaling_policy", "Dimensions"): "metric_dimension",  # customized spec only
    # predictive_scaling_configuration holds one metric_specification block (MaxItems 1).
    ("aws_autoscaling_policy", "MetricSpecifications"): "metric_specification",
    ("aws_cloudwatch_metric_alarm", "Metrics"): "metric_query",
    ("aws_cloudwatch_metric_alarm", "OKActions"): "ok_actions",
    ("aws_autoscaling_lifecycle_hook", "LifecycleHookName"): "name",
}


def _name(logical_id: str) -> str:
    """TargetTrackingPolicy → target_tracking_policy (an API key or a logical id in
    snake_case)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", logical_id).lower()


# The provider's nullable.TypeNullableInt attributes are strings in its schema
# (schema.TypeString; internal/types/nullable/int.go): the request's integers as text.
TF_NULLABLE_INTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("aws_autoscaling_policy", "SchedulingBufferTime"),
        ("aws_autoscaling_policy", "MaxCapacityBuffer"),
    }
)

# Renamed the same way in every resource.
_KEY_RENAMES = {"AutoScalingGroupName": "autoscaling_group_name"}
_INTERPOLATION = {
    GROUP: "${var." + GROUP_VARIABLE + "}",
    ACCOUNT: "${data.aws_caller_identity.current.account_id}",
    PARTITION: "${data.aws_partition.current.partition}",
    REGION: "${data.aws_region.current.name}",
    WAKE_POLICY_ARN: "${aws_autoscaling_policy." + _name(WAKE_POLICY_ID) + ".arn}",
}


def tf_value(value: Any) -> Any:
    """Placeholders as interpolations; a literal ${ or %{ escaped ($${, %%{)."""
    if isinstance(value, dict):
        return {key: tf_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [tf_value(item) for item in value]
    if not isinstance(value, str):
        return value
    return "".join(
        _INTERPOLATION.get(part) or part.replace("${", "$${").replace("%{", "%%{")
        for part in placeholder_split(value)
    )


def _dimensions_map(dimensions: list[dict[str, str]]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in dimensions}


def _translate(kind: str, key: str, value: Any) -> tuple[str, Any]:
    name = TF_RENAMES.get((kind, key)) or _KEY_RENAMES.get(key) or _name(key)
    if kind == "aws_cloudwatch_metric_alarm" and key == "Dimensions":
        return "dimensions", _dimensions_map(value)
    if kind == "aws_cloudwatch_metric_alarm" and key == "MetricStat":
        # metric_query.metric: the MetricStat's Metric fields, Period, Stat and Unit.
        folded = {k: v for k, v in value.items() if k != "Metric"} | value["Metric"]
        return "metric", _block(kind, folded)
    if kind == "aws_autoscaling_policy" and key == "MetricStat":
        return "metric_stat", _metric_stat(value)
    if (kind, key) in TF_NULLABLE_INTS:
        return name, str(value)
    if isinstance(value, dict):
        return name, _block(kind, value)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return name, [_block(kind, item) for item in value]
    return name, value


def _block(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    return dict(_translate(kind, key, value) for key, value in params.items())


def _metric_stat(stat: dict[str, Any]) -> dict[str, Any]:
    """A metric query's metric_stat (target tracking's metrics, and predictive scaling's
    metric_data_queries, which share the shape): metric.dimensions are name/value blocks
    (the customized spec's own are metric_dimension)."""
    metric = stat["Metric"]
    dimensions = [{"name": d["Name"], "value": d["Value"]} for d in metric.get("Dimensions", [])]
    out: dict[str, Any] = {
        "metric": {
            "namespace": metric["Namespace"],
            "metric_name": metric["MetricName"],
            "dimensions": dimensions,
        }
    }
    out.update((_name(key), value) for key, value in stat.items() if key != "Metric")
    return out


def tf_attributes(request: ApiRequest) -> dict[str, Any]:
    """The request as the resource's attributes (placeholders kept)."""
    return _block(TF_TYPES[request.operation], request.params)


def tf_document_build(stack: Stack) -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = {}
    for resource in stack.resources:
        kind = TF_TYPES[resource.request.operation]
        resources.setdefault(kind, {})[_name(resource.logical_id)] = tf_value(
            tf_attributes(resource.request)
        )
    return {
        "//": [
            "Exported by manage.py export_scaling_stack: the video workers' scaling.",
            *stack.notes,
        ],
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws"}}},
        "variable": {
            GROUP_VARIABLE: {
                "type": "string",
                "description": "The existing Auto Scaling group the workers run in.",
                "default": stack.group_default,
                "validation": [
                    {
                        "condition": (
                            f'${{can(regex("{GROUP_NAME_PATTERN}", var.{GROUP_VARIABLE}))}}'
                        ),
                        "error_message": "Letters, digits, - and _ (the dashboard's name).",
                    }
                ],
            }
        },
        "data": {
            "aws_caller_identity": {"current": {}},
            "aws_partition": {"current": {}},
            "aws_region": {"current": {}},
        },
        "resource": resources,
    }


def tf_render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
