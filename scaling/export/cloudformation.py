"""The stack as a CloudFormation template (JSON, or YAML with PyYAML).

Each resource's properties are its request's parameters, renamed by
``CFN_PROPERTY_NAMES`` (the one mapping; nested fields keep the API's names,
which CloudFormation's schemas share) and with the placeholders of
``scaling.export.resources`` turned into ``Ref`` / ``Fn::Sub``. The group is a
parameter (``AutoScalingGroupName``), never a resource of this template.
"""

from __future__ import annotations

import json
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
from scaling.policy.options import PolicyError
from scaling.policy.requests import ApiRequest

GROUP_PARAMETER = "AutoScalingGroupName"
# The installer's operation → the resource type that holds what it writes.
CFN_TYPES = {
    "PutScalingPolicy": "AWS::AutoScaling::ScalingPolicy",
    "PutMetricAlarm": "AWS::CloudWatch::Alarm",
    "PutDashboard": "AWS::CloudWatch::Dashboard",
    "PutLifecycleHook": "AWS::AutoScaling::LifecycleHook",
    "PutWarmPool": "AWS::AutoScaling::WarmPool",
}
# A request's top-level key → the resource's property; None: the resource has no such
# property. Every key not listed keeps its name (the schemas use the API's names).
CFN_PROPERTY_NAMES: dict[str, str | None] = {
    # AWS::AutoScaling::ScalingPolicy has no Enabled: a policy in a stack is always
    # enabled, as the installer's (Enabled: true) is.
    "Enabled": None,
    # PolicyName is read-only in the resource schema (a GetAtt, not a property):
    # CloudFormation names a stack's policy itself; install_scaling_policy --check finds
    # it by its shape (scaling.policy.check).
    "PolicyName": None,
}
# How each placeholder is written inside Fn::Sub, and alone (as Ref).
_SUB = {
    GROUP: "${" + GROUP_PARAMETER + "}",
    ACCOUNT: "${AWS::AccountId}",
    PARTITION: "${AWS::Partition}",
    REGION: "${AWS::Region}",
    WAKE_POLICY_ARN: "${" + WAKE_POLICY_ID + "}",  # Ref of a ScalingPolicy: its ARN
}
_REF = {GROUP: GROUP_PARAMETER, WAKE_POLICY_ARN: WAKE_POLICY_ID}


def cfn_value(value: Any) -> Any:
    """A request's value with its placeholders as Ref / Fn::Sub."""
    if isinstance(value, dict):
        return {key: cfn_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cfn_value(item) for item in value]
    if not isinstance(value, str):
        return value
    parts = placeholder_split(value)
    if not any(part in _SUB for part in parts):
        return value
    if len(parts) == 1 and parts[0] in _REF:
        return {"Ref": _REF[parts[0]]}
    # A literal "${" in Fn::Sub is written "${!".
    return {"Fn::Sub": "".join(_SUB.get(p, p.replace("${", "${!")) for p in parts)}


def cfn_properties(request: ApiRequest) -> dict[str, Any]:
    """The request's parameters as the resource's properties (placeholders kept)."""
    properties: dict[str, Any] = {}
    for key, value in request.params.items():
        name = CFN_PROPERTY_NAMES.get(key, key)
        if name is not None:
            properties[name] = value
    return properties


def cfn_template_build(stack: Stack) -> dict[str, Any]:
    where = f"fleet {stack.fleet}" if stack.fleet else f"group {stack.group_default}"
    resources: dict[str, Any] = {}
    for resource in stack.resources:
        resources[resource.logical_id] = {
            "Type": CFN_TYPES[resource.request.operation],
            "Properties": cfn_value(cfn_properties(resource.request)),
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"The video workers' scaling ({where}): target tracking, wake from zero, alarms, "
            "dashboard, drain hook. Exported by manage.py export_scaling_stack."
        ),
        "Metadata": {"Notes": stack.notes},
        "Parameters": {
            GROUP_PARAMETER: {
                "Type": "String",
                "Description": "The existing Auto Scaling group the workers run in.",
                "Default": stack.group_default,
                "AllowedPattern": GROUP_NAME_PATTERN,
                "ConstraintDescription": "letters, digits, - and _ (the dashboard's name).",
            }
        },
        "Resources": resources,
        "Outputs": {
            "TargetTrackingPolicyArn": {"Value": {"Ref": "TargetTrackingPolicy"}},
            "WakePolicyArn": {"Value": {"Ref": WAKE_POLICY_ID}},
        },
    }


def cfn_render(template: dict[str, Any], *, yaml_text: bool) -> str:
    if not yaml_text:
        return json.dumps(template, indent=2) + "\n"
    try:
        import yaml
    except ImportError:
        raise PolicyError(
            "A YAML template needs PyYAML (pip install PyYAML); JSON needs nothing."
        ) from None
    return str(yaml.safe_dump(template, sort_keys=False, width=100, allow_unicode=True))
