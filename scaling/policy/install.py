"""Where the scaling policy is built, compared with what AWS holds, installed and removed.

Every request is built from ``metric_spec_get()`` so that the policy reads
exactly the metric the publisher writes (invariant 4). What this module
installs on the group, and nothing else:

- group metrics collection for ``GroupInServiceInstances`` at 1 minute (the
  divisor of backlog per instance), with a tag on the group saying this
  command enabled it, so that ``--uninstall`` knows whether to disable it;
- a target tracking policy on backlog per in-service instance (``per-instance``)
  or on the raw count (``total``, the old policy);
- a step scaling policy and a CloudWatch alarm that raise capacity by one when
  videos wait and no instance is in service (target tracking cannot divide by
  zero instances, so a group whose MinSize is 0 would otherwise never wake).

EC2 Auto Scaling target tracking has no cooldowns: no request built here
carries ``Cooldown``, ``ScaleOutCooldown`` or ``ScaleInCooldown``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from scaling.aws import autoscaling_client, aws_credentials_present, cloudwatch_client
from scaling.conf import scaling_settings
from scaling.errors import error_text
from scaling.metric_spec import MetricSpec, metric_spec_get

Mode = Literal["per-instance", "total"]
MODES: tuple[Mode, ...] = ("per-instance", "total")

TARGET_POLICY_NAME = "academy-backlog-target-tracking"
WAKE_POLICY_NAME = "academy-backlog-wake-from-zero"
IN_SERVICE_METRIC = "GroupInServiceInstances"
METRICS_GRANULARITY = "1Minute"
# Marks metrics collection this command enabled (and may therefore disable).
METRICS_TAG_KEY = "academy:scaling:enabled-metrics"

DEFAULT_TARGET_VALUE = 3.0  # the old policy's number; per instance in per-instance mode
DEFAULT_WARMUP_SECONDS = 60  # the old "scale out after about 60 s"
MAX_WARMUP_SECONDS = 3600
WAKE_ALARM_PERIOD = 60  # GroupInServiceInstances exists only at 1-minute granularity

TOTAL_MODE_WARNING = (
    "Warning: --mode total tracks the raw backlog, which does not fall as instances are "
    "added, so target tracking keeps adding capacity while the count stays above the "
    "target (over-scaling) and treats a long backlog on a large fleet like one on a "
    "single instance (under-scaling when the target is high)."
)


class PolicyError(Exception):
    """A bad input or a failed precondition: one sentence, shown as is."""


def wake_alarm_name(asg_name: str) -> str:
    return f"{asg_name}-backlog-wake-from-zero"


# Inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyOptions:
    asg_name: str
    mode: Mode
    target_value: float
    warmup_seconds: int
    target_derivation: str


def _number(flag: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise PolicyError(f"{flag} must be a number, got {raw!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise PolicyError(f"{flag} must be a finite number above 0, got {raw!r}.")
    return value


def asg_name_parse(raw: str | None) -> str:
    name = scaling_settings().asg_name if raw is None else raw.strip()
    if not 1 <= len(name) <= 255:
        raise PolicyError("--asg-name must be 1 to 255 characters.")
    return name


def policy_options_parse(
    *,
    asg_name: str | None,
    mode: str | None,
    target_value: str | None,
    acceptable_wait: str | None,
    processing_time: str | None,
    warmup: str | None,
) -> PolicyOptions:
    """Turn the command's raw flags into options, or raise PolicyError with one sentence."""
    name = asg_name_parse(asg_name)
    chosen_mode = mode or "per-instance"
    if chosen_mode not in MODES:
        raise PolicyError(f"--mode must be 'per-instance' or 'total', got {chosen_mode!r}.")
    derived = acceptable_wait is not None or processing_time is not None
    if derived and target_value is not None:
        raise PolicyError(
            "Give either --target-value or --acceptable-wait with --processing-time, not both."
        )
    if acceptable_wait is not None and processing_time is None:
        raise PolicyError(
            "--acceptable-wait needs --processing-time (target = acceptable wait / processing "
            "time)."
        )
    if processing_time is not None and acceptable_wait is None:
        raise PolicyError(
            "--processing-time needs --acceptable-wait (target = acceptable wait / processing "
            "time)."
        )
    if derived and chosen_mode == "total":
        raise PolicyError(
            "--acceptable-wait and --processing-time derive a per-instance target; "
            "--mode total takes --target-value."
        )
    if acceptable_wait is not None and processing_time is not None:
        wait = _number("--acceptable-wait", acceptable_wait)
        each = _number("--processing-time", processing_time)
        value = wait / each
        if not math.isfinite(value) or value <= 0:
            raise PolicyError(
                f"--acceptable-wait / --processing-time gives {value!r}, which is not a "
                "finite number above 0."
            )
        derivation = (
            f"target {_fmt(value)} = acceptable wait {_fmt(wait)} s / processing time "
            f"{_fmt(each)} s per video (videos waiting per in-service instance)"
        )
    elif target_value is not None:
        value = _number("--target-value", target_value)
        derivation = f"target {_fmt(value)} from --target-value"
    else:
        value = DEFAULT_TARGET_VALUE
        derivation = f"target {_fmt(value)} (default)"
    warmup_seconds = DEFAULT_WARMUP_SECONDS
    if warmup is not None:
        if not re.fullmatch(r"\s*\d{1,9}\s*", warmup) or int(warmup) > MAX_WARMUP_SECONDS:
            raise PolicyError(
                f"--warmup must be a whole number of seconds from 0 to {MAX_WARMUP_SECONDS}, "
                f"got {warmup!r}."
            )
        warmup_seconds = int(warmup)
    return PolicyOptions(
        asg_name=name,
        mode=chosen_mode,
        target_value=value,
        warmup_seconds=warmup_seconds,
        target_derivation=derivation,
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


# Request builders -------------------------------------------------------------


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


def _in_service_metric(asg_name: str) -> dict[str, Any]:
    return {
        "Namespace": "AWS/AutoScaling",
        "MetricName": IN_SERVICE_METRIC,
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg_name}],
    }


def _backlog_metric(spec: MetricSpec) -> dict[str, Any]:
    return {
        "Namespace": spec.namespace,
        "MetricName": spec.metric_name,
        "Dimensions": spec.dimensions_api(),
    }


def per_instance_expression(spec: MetricSpec) -> str:
    if spec.period_seconds < 60:
        # GroupInServiceInstances has one datapoint a minute: carry it across the
        # sub-minute buckets, or five of six backlog datapoints would have no divisor.
        return "m1 / FILL(m2, REPEAT)"
    return "m1 / m2"


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
        metric = {
            "Metrics": [
                {
                    "Id": "m1",
                    "Label": f"{spec.metric_name} (videos waiting or processing)",
                    "MetricStat": {
                        "Metric": _backlog_metric(spec),
                        "Stat": "Average",
                        "Unit": spec.unit,
                        **_period_fields(spec),
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "m2",
                    "Label": "In-service instances",
                    "MetricStat": {
                        "Metric": _in_service_metric(options.asg_name),
                        "Stat": "Average",
                        **_period_fields(spec),
                    },
                    "ReturnData": False,
                },
                {
                    "Id": "e1",
                    "Label": "Backlog per in-service instance",
                    "Expression": per_instance_expression(spec),
                    "ReturnData": True,
                },
            ]
        }
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


def metrics_collection_requests_build(*, asg_name: str) -> list[ApiRequest]:
    return [
        ApiRequest(
            "autoscaling",
            "EnableMetricsCollection",
            {
                "AutoScalingGroupName": asg_name,
                "Metrics": [IN_SERVICE_METRIC],
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
                        "Value": IN_SERVICE_METRIC,
                        "PropagateAtLaunch": False,
                    }
                ]
            },
        ),
    ]


def wake_policy_arn_placeholder() -> str:
    return f"<PolicyARN returned for {WAKE_POLICY_NAME}>"


# Comparing with what AWS holds ----------------------------------------------------

# Keys AWS adds when it reads a thing back; never part of what we install.
_READ_ONLY_KEYS = frozenset(
    {
        "PolicyARN",
        "Alarms",
        "AlarmArn",
        "AlarmConfigurationUpdatedTimestamp",
        "StateValue",
        "StateReason",
        "StateReasonData",
        "StateUpdatedTimestamp",
        "StateTransitionedTimestamp",
        "ResponseMetadata",
    }
)
# What the API assumes for a key that describe_* leaves out.
_API_DEFAULTS: dict[str, Any] = {
    "Enabled": True,
    "TargetTrackingConfiguration.DisableScaleIn": False,
    "ActionsEnabled": True,
}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    def line(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True, default=str)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _same(old: Any, new: Any) -> bool:
    numbers = (int, float)
    if (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    ):
        return float(old) == float(new)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return not _diff(old, new, "")
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> list[FieldChange]:
    changes: list[FieldChange] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}.{key}" if prefix else key
        if not prefix and key in _READ_ONLY_KEYS:
            continue
        if key not in new:
            if not _empty(old[key]) and not _same(old[key], _API_DEFAULTS.get(path)):
                changes.append(FieldChange(path, old[key], None))
            continue
        before = old.get(key, _API_DEFAULTS.get(path))
        after = new[key]
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes.extend(_diff(before, after, path))
        elif (
            isinstance(before, list)
            and isinstance(after, list)
            and len(before) == len(after)
            and all(isinstance(i, Mapping) for i in before + after)
        ):
            for index, (a, b) in enumerate(zip(before, after, strict=True)):
                changes.extend(_diff(a, b, f"{path}[{index}]"))
        elif not _same(before, after):
            changes.append(FieldChange(path, before, after))
    return changes


def config_diff(*, desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldChange]:
    """What would change if ``desired`` replaced ``actual``: whole subtrees where one side
    lacks them, single fields where both have them."""
    return _diff(actual, desired, "")


# Install and uninstall ------------------------------------------------------------

Action = Literal["created", "updated", "unchanged", "removed", "absent", "kept"]


@dataclass
class ItemResult:
    kind: str  # metrics-collection | target-tracking-policy | wake-policy | wake-alarm
    name: str
    action: Action
    changes: list[FieldChange] = field(default_factory=list)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "changes": [c.as_json() for c in self.changes],
            "note": self.note,
        }


@dataclass
class PolicyRun:
    asg_name: str
    region: str
    dry_run: bool
    uninstall: bool
    options: PolicyOptions | None
    items: list[ItemResult] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "asg_name": self.asg_name,
            "region": self.region,
            "dry_run": self.dry_run,
            "uninstall": self.uninstall,
            "items": [item.as_json() for item in self.items],
            "requests": [request.as_json() for request in self.requests],
            "warnings": self.warnings,
        }
        if self.options is not None:
            data.update(
                mode=self.options.mode,
                target_value=self.options.target_value,
                target_derivation=self.options.target_derivation,
                warmup_seconds=self.options.warmup_seconds,
            )
        return data


def _one_line(exc: BaseException) -> str:
    return error_text(exc)[:400]


def _aws(operation: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        raise PolicyError(f"AWS call {operation} failed: {_one_line(exc).rstrip('.')}.") from exc


@dataclass
class _Current:
    group: dict[str, Any]
    policies: dict[str, dict[str, Any]]
    alarm: dict[str, Any] | None


def _current_read(*, asg_name: str, region: str, autoscaling: Any, cloudwatch: Any) -> _Current:
    """Checks before any write: credentials, then the group in this region."""
    if not aws_credentials_present():
        raise PolicyError(
            "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or run with an instance role."
        )
    groups = _aws(
        "DescribeAutoScalingGroups",
        lambda: autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name]),
    )["AutoScalingGroups"]
    if not groups:
        # moto (and a typo) would otherwise accept a policy for a group that is not there.
        raise PolicyError(f"Auto Scaling group {asg_name!r} does not exist in region {region}.")
    response = _aws(
        "DescribePolicies",
        lambda: autoscaling.describe_policies(
            AutoScalingGroupName=asg_name, PolicyNames=[TARGET_POLICY_NAME, WAKE_POLICY_NAME]
        ),
    )
    policies = {p["PolicyName"]: p for p in response["ScalingPolicies"]}
    alarms = _aws(
        "DescribeAlarms",
        lambda: cloudwatch.describe_alarms(AlarmNames=[wake_alarm_name(asg_name)]),
    )["MetricAlarms"]
    return _Current(group=groups[0], policies=policies, alarm=alarms[0] if alarms else None)


def _metrics_enabled(group: Mapping[str, Any]) -> bool:
    return any(
        m.get("Metric") == IN_SERVICE_METRIC and m.get("Granularity", METRICS_GRANULARITY)
        for m in group.get("EnabledMetrics", [])
    )


def _metrics_tagged(group: Mapping[str, Any]) -> bool:
    return any(tag.get("Key") == METRICS_TAG_KEY for tag in group.get("Tags", []))


def _send(client: Any, request: ApiRequest) -> Any:
    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", request.operation).lower())
    return _aws(request.operation, lambda: method(**request.params))


def policy_install(*, options: PolicyOptions, dry_run: bool) -> PolicyRun:
    """Install (or align) everything this command owns on the group; idempotent."""
    spec = metric_spec_get(asg_name=options.asg_name)
    region = scaling_settings().region
    autoscaling = autoscaling_client(role="installer")
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    current = _current_read(
        asg_name=options.asg_name, region=region, autoscaling=autoscaling, cloudwatch=cloudwatch
    )
    run = PolicyRun(
        asg_name=options.asg_name, region=region, dry_run=dry_run, uninstall=False, options=options
    )
    if options.mode == "total":
        run.warnings.append(TOTAL_MODE_WARNING)

    def perform(request: ApiRequest) -> Any:
        run.requests.append(request)
        if dry_run:
            return None
        return _send(autoscaling if request.service == "autoscaling" else cloudwatch, request)

    # 1. The divisor of backlog per instance, also read by the wake alarm.
    metrics_item = ItemResult(
        "metrics-collection", f"{IN_SERVICE_METRIC} ({METRICS_GRANULARITY})", "unchanged"
    )
    if _metrics_enabled(current.group):
        if not _metrics_tagged(current.group):
            metrics_item.note = "enabled outside this command; --uninstall leaves it enabled"
    else:
        metrics_item.action = "created"
        for request in metrics_collection_requests_build(asg_name=options.asg_name):
            perform(request)
    run.items.append(metrics_item)

    # 2. and 3. The two policies.
    wake_arn = current.policies.get(WAKE_POLICY_NAME, {}).get("PolicyARN")
    for kind, request in (
        ("target-tracking-policy", target_policy_request_build(spec=spec, options=options)),
        ("wake-policy", wake_policy_request_build(options=options)),
    ):
        name = request.params["PolicyName"]
        existing = current.policies.get(name)
        item = _item_for(kind, name, request, existing)
        if item.action != "unchanged":
            response = perform(request)
            if name == WAKE_POLICY_NAME and response is not None:
                wake_arn = response.get("PolicyArn") or wake_arn
        run.items.append(item)

    # 4. The alarm that calls the wake policy.
    if wake_arn is None and not dry_run:
        # moto's PutScalingPolicy answers without the ARN: read it back.
        described = _aws(
            "DescribePolicies",
            lambda: autoscaling.describe_policies(
                AutoScalingGroupName=options.asg_name, PolicyNames=[WAKE_POLICY_NAME]
            ),
        )["ScalingPolicies"]
        wake_arn = described[0]["PolicyARN"] if described else None
        if wake_arn is None:
            raise PolicyError(f"Policy {WAKE_POLICY_NAME} was not found after it was written.")
    alarm_request = wake_alarm_request_build(
        spec=spec, options=options, wake_policy_arn=wake_arn or wake_policy_arn_placeholder()
    )
    alarm_item = _item_for(
        "wake-alarm", alarm_request.params["AlarmName"], alarm_request, current.alarm
    )
    if alarm_item.action != "unchanged":
        perform(alarm_request)
    run.items.append(alarm_item)
    return run


def _item_for(
    kind: str, name: str, request: ApiRequest, existing: Mapping[str, Any] | None
) -> ItemResult:
    if existing is None:
        return ItemResult(kind, name, "created")
    changes = config_diff(desired=request.params, actual=existing)
    return ItemResult(kind, name, "updated" if changes else "unchanged", changes)


def _not_implemented(exc: PolicyError) -> bool:
    cause = exc.__cause__
    if isinstance(cause, ResponseParserError):
        return True  # an endpoint (moto) answering an unknown action with an HTML 500 page
    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code") in ("NotImplemented", "InvalidAction")
    return False


def policy_uninstall(*, asg_name: str, dry_run: bool) -> PolicyRun:
    """Remove what policy_install installed, and only that."""
    region = scaling_settings().region
    autoscaling = autoscaling_client(role="installer")
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    current = _current_read(
        asg_name=asg_name, region=region, autoscaling=autoscaling, cloudwatch=cloudwatch
    )
    run = PolicyRun(asg_name=asg_name, region=region, dry_run=dry_run, uninstall=True, options=None)

    def perform(request: ApiRequest) -> None:
        run.requests.append(request)
        if not dry_run:
            _send(autoscaling if request.service == "autoscaling" else cloudwatch, request)

    # The alarm first: it points at the wake policy.
    alarm_name = wake_alarm_name(asg_name)
    if current.alarm is None:
        run.items.append(ItemResult("wake-alarm", alarm_name, "absent"))
    else:
        perform(ApiRequest("cloudwatch", "DeleteAlarms", {"AlarmNames": [alarm_name]}))
        run.items.append(ItemResult("wake-alarm", alarm_name, "removed"))

    for kind, name in (
        ("target-tracking-policy", TARGET_POLICY_NAME),
        ("wake-policy", WAKE_POLICY_NAME),
    ):
        if name not in current.policies:
            run.items.append(ItemResult(kind, name, "absent"))
            continue
        # Deleting a target tracking policy also deletes the alarms AWS made for it.
        perform(
            ApiRequest(
                "autoscaling",
                "DeletePolicy",
                {"AutoScalingGroupName": asg_name, "PolicyName": name},
            )
        )
        run.items.append(ItemResult(kind, name, "removed"))

    metrics_name = f"{IN_SERVICE_METRIC} ({METRICS_GRANULARITY})"
    if not _metrics_tagged(current.group):
        note = "not enabled by this command" if _metrics_enabled(current.group) else ""
        action: Action = "kept" if note else "absent"
        run.items.append(ItemResult("metrics-collection", metrics_name, action, note=note))
        return run
    item = ItemResult("metrics-collection", metrics_name, "removed")
    if _metrics_enabled(current.group):
        try:
            perform(
                ApiRequest(
                    "autoscaling",
                    "DisableMetricsCollection",
                    {"AutoScalingGroupName": asg_name, "Metrics": [IN_SERVICE_METRIC]},
                )
            )
        except PolicyError as exc:
            if not _not_implemented(exc):
                raise
            item.action = "kept"
            item.note = "this endpoint does not implement DisableMetricsCollection"
            run.warnings.append(
                f"Warning: {IN_SERVICE_METRIC} collection stays enabled on {asg_name}: this "
                "endpoint does not implement DisableMetricsCollection."
            )
    perform(
        ApiRequest(
            "autoscaling",
            "DeleteTags",
            {
                "Tags": [
                    {
                        "ResourceId": asg_name,
                        "ResourceType": "auto-scaling-group",
                        "Key": METRICS_TAG_KEY,
                    }
                ]
            },
        )
    )
    run.items.append(item)
    return run
