"""Predictive scaling (``install_scaling_policy --predictive``): request, refusal, plan.

A predictive policy forecasts the next 48 hours from at least a day of history and,
in ForecastAndScale, raises the group's minimum ahead of the forecast; target
tracking still answers what the forecast missed. It sits beside target tracking on
the same published metric, with the same target:

- scaling metric: backlog per in-service instance, the published BacklogCount
  divided by ``AWS/AutoScaling GroupInServiceInstances``, the same metric math as
  target tracking's per-instance mode (``requests.per_instance_expression``), Average;
- load metric: the published BacklogCount itself, Sum, the one query with
  ReturnData: AWS's rules for custom metrics say the load metric must represent the
  load on the group as a whole, regardless of its capacity, the scaling metric an
  average per instance, inversely proportional to capacity, and that "the final
  aggregation result" should use Sum for the load metric and Average for the scaling
  metric; with metric math only the final expression has ReturnData true
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/predictive-scaling-customized-metric-specification.html,
  https://docs.aws.amazon.com/autoscaling/ec2/userguide/using-math-expression-examples.html,
  https://docs.aws.amazon.com/autoscaling/ec2/userguide/construct-json-custom-metrics.html);
- no CustomizedCapacityMetricSpecification: it is optional in the API
  (PredictiveScalingMetricSpecification; only TargetValue is required) and AWS's own
  custom load and scaling example leaves it out;
- MetricStat in a predictive policy has no Period (AWS sums each hour's datapoints);
- Mode, SchedulingBufferTime (AWS default 300 s, less than the 3600-second forecast
  interval), MaxCapacityBreachBehavior and MaxCapacityBuffer (only with
  IncreaseMaxCapacity, which requires it), as in
  https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PredictiveScalingConfiguration.html.

AWS needs 24 hours of metric history before it forecasts, and advises running
ForecastOnly first to judge the forecast: the install refuses with less than 24
hours of published values in the fleet's audit trail (``MetricPublication``), and
warns when ForecastAndScale comes with no predictive policy installed before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import Max, Min

from scaling.database import connection_drop
from scaling.errors import error_one_line
from scaling.metric_spec import MetricSpec
from scaling.models import MetricPublication, PublicationStatus
from scaling.policy.diff import ItemResult, item_for
from scaling.policy.options import PolicyError, PolicyOptions
from scaling.policy.requests import (
    PREDICTIVE_POLICY_NAME,
    ApiRequest,
    per_instance_queries,
    policy_delete_request_build,
    published_metric,
)

PREDICTIVE_KIND = "predictive-policy"
HISTORY_NEEDED = timedelta(hours=24)
FORECAST_FIRST_WARNING = (
    "Warning: --predictive forecast-and-scale with no predictive policy installed before: "
    "AWS advises ForecastOnly first, to compare the forecast with what happened before it "
    "scales on it."
)
Planned = tuple[ItemResult | None, list[ApiRequest], list[str]]


def predictive_configuration_build(*, spec: MetricSpec, options: PolicyOptions) -> dict[str, Any]:
    """PredictiveScalingConfiguration for the options (``options.predictive`` set)."""
    asked = options.predictive
    assert asked is not None
    backlog = {"Metric": published_metric(spec), "Unit": spec.unit}
    configuration: dict[str, Any] = {
        "MetricSpecifications": [
            {
                "TargetValue": options.target_value,
                "CustomizedScalingMetricSpecification": {
                    "MetricDataQueries": per_instance_queries(spec, options.asg_name, periods=False)
                },
                "CustomizedLoadMetricSpecification": {
                    "MetricDataQueries": [
                        {
                            "Id": "load",
                            "Label": f"{spec.metric_name} (the whole group's backlog)",
                            "MetricStat": {**backlog, "Stat": "Sum"},
                            "ReturnData": True,
                        }
                    ]
                },
            }
        ],
        "Mode": asked.mode,
        "SchedulingBufferTime": asked.buffer_seconds,
        "MaxCapacityBreachBehavior": asked.max_capacity,
    }
    if asked.max_buffer_percent is not None:
        configuration["MaxCapacityBuffer"] = asked.max_buffer_percent
    return configuration


def predictive_policy_request_build(*, spec: MetricSpec, options: PolicyOptions) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "PutScalingPolicy",
        {
            "AutoScalingGroupName": options.asg_name,
            "PolicyName": PREDICTIVE_POLICY_NAME,
            "PolicyType": "PredictiveScaling",
            "PredictiveScalingConfiguration": predictive_configuration_build(
                spec=spec, options=options
            ),
        },
    )


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def history_check(*, fleet: str, now: datetime | None = None) -> None:
    """PolicyError unless the fleet's audit trail holds 24 hours of published values
    (oldest to newest row that carries one): AWS forecasts from no less."""
    now = now or datetime.now(UTC)
    try:
        span = MetricPublication.objects.filter(
            fleet=fleet, status=PublicationStatus.PUBLISHED, value__isnull=False
        ).aggregate(oldest=Min("slot_start"), newest=Max("slot_start"))
    except DatabaseError as exc:
        connection_drop()
        raise PolicyError(
            f"--predictive needs 24 hours of published values, and fleet {fleet}'s audit "
            f"trail could not be read ({error_one_line(exc)}): run again once the database "
            "answers."
        ) from exc
    oldest, newest = span["oldest"], span["newest"]
    if oldest is None or newest is None:
        raise PolicyError(
            f"--predictive needs 24 hours of published values and fleet {fleet}'s audit "
            f"trail holds none: run target tracking until {_utc(now + HISTORY_NEEDED)}, "
            "then add --predictive."
        )
    held = newest - oldest
    if held < HISTORY_NEEDED:
        hours = held.total_seconds() / 3600
        raise PolicyError(
            f"--predictive needs 24 hours of published values and fleet {fleet}'s audit "
            f"trail holds {hours:.1f} hours (since {_utc(oldest)}): run target tracking "
            f"until {_utc(oldest + HISTORY_NEEDED)}, then add --predictive."
        )


def predictive_installed(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribePolicies entry cut to what the request sets (AWS adds Enabled, the
    ARN, empty StepAdjustments and alarms)."""
    keys = ("AutoScalingGroupName", "PolicyName", "PolicyType", "PredictiveScalingConfiguration")
    return {key: policy[key] for key in keys if key in policy}


def predictive_plan(
    *, spec: MetricSpec, options: PolicyOptions, held: Mapping[str, Any] | None, fleet: str
) -> Planned:
    """What an install does to the predictive policy: (its item, or None when nothing is
    asked and none is there; the writes; warnings). Ours by name."""
    name = PREDICTIVE_POLICY_NAME
    if options.predictive_off:
        if held is None:
            return ItemResult(PREDICTIVE_KIND, name, "absent"), [], []
        delete = policy_delete_request_build(asg_name=options.asg_name, policy_name=name)
        return ItemResult(PREDICTIVE_KIND, name, "removed"), [delete], []
    if options.predictive is None:
        if held is None:
            return None, [], []
        return ItemResult(PREDICTIVE_KIND, name, "kept", note="--predictive off removes it"), [], []
    history_check(fleet=fleet)
    warnings = []
    if held is None and options.predictive.mode == "ForecastAndScale":
        warnings.append(FORECAST_FIRST_WARNING)
    request = predictive_policy_request_build(spec=spec, options=options)
    existing = None if held is None else predictive_installed(held)
    item = item_for(PREDICTIVE_KIND, name, request, existing)
    return item, [] if item.action == "unchanged" else [request], warnings


def predictive_removal(*, asg_name: str, held: Mapping[str, Any] | None) -> Planned:
    """--uninstall: the policy goes (nothing said when there is none)."""
    if held is None:
        return None, [], []
    delete = policy_delete_request_build(asg_name=asg_name, policy_name=PREDICTIVE_POLICY_NAME)
    return ItemResult(PREDICTIVE_KIND, PREDICTIVE_POLICY_NAME, "removed"), [delete], []
