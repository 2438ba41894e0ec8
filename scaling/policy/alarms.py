"""The five alarms that say when scaling breaks, built from ``metric_spec_get()``.

Each one watches a metric the publisher writes (with the spec's dimensions
exactly) or a group metric this command collects, and its description says
what to do. None of them scales anything: with ``--alarm-topic`` they notify an
SNS topic (in ALARM and back to OK); without it they still show in the
console, on the dashboard and in ``scaling_status``.

| kind             | fires when                                                     |
|------------------|----------------------------------------------------------------|
| publisher-silent | no BacklogCount datapoint for 3 periods (missing = breaching)  |
| wait-too-long    | OldestBacklogAgeSeconds above the alarm wait for 5 minutes     |
| starved          | backlog per instance above target at MaxSize for 10 minutes    |
| cannot-wake      | backlog above 0 and no instance in service for 5 minutes       |
| work-lost        | RecoveredVideos above 0 in a minute                            |
"""

from __future__ import annotations

from typing import Any, Literal

from scaling.metric_spec import MetricSpec
from scaling.policy.options import PolicyOptions
from scaling.policy.requests import (
    IN_SERVICE_METRIC,
    ApiRequest,
    group_metric,
    published_metric,
)

AlarmKind = Literal["publisher-silent", "wait-too-long", "starved", "cannot-wake", "work-lost"]
ALARM_KINDS: tuple[AlarmKind, ...] = (
    "publisher-silent",
    "wait-too-long",
    "starved",
    "cannot-wake",
    "work-lost",
)
ALARM_PERIOD = 60  # group metrics exist only at 1 minute
SILENT_PERIODS = 3
WAIT_PERIODS = 5
STARVED_PERIODS = 10
CANNOT_WAKE_PERIODS = 5
_SOURCE = "Installed by manage.py install_scaling_policy."


def alarm_name(asg_name: str, kind: AlarmKind) -> str:
    return f"{asg_name}-scaling-{kind}"


def alarm_names(asg_name: str) -> dict[AlarmKind, str]:
    return {kind: alarm_name(asg_name, kind) for kind in ALARM_KINDS}


def _number(value: float) -> str:
    return format(value, ".10g")


def starved_expression(*, options: PolicyOptions) -> str:
    """1 while the group is at its maximum and the backlog is still above the target.

    m1 backlog, m2 in-service instances, m3 the group's MaxSize. Per instance,
    "backlog per instance above the target" is written ``m1 > T * m2`` (the same
    as ``m1 / m2 > T`` for m2 > 0, with no division by zero): a group whose
    MaxSize is 0 with videos waiting is starved too.
    """
    target = _number(options.target_value)
    if options.mode == "total":
        return f"IF(m2 >= m3 AND m1 > {target}, 1, 0)"
    return f"IF(m2 >= m3 AND m1 > {target} * m2, 1, 0)"


CANNOT_WAKE_EXPRESSION = "IF(m1 > 0 AND m2 == 0, 1, 0)"


def _stat(query_id: str, metric: dict[str, Any], stat: str) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {"Metric": metric, "Period": ALARM_PERIOD, "Stat": stat},
        "ReturnData": False,
    }


def _request(
    *, kind: AlarmKind, options: PolicyOptions, description: str, fields: dict[str, Any]
) -> ApiRequest:
    params: dict[str, Any] = {
        "AlarmName": alarm_name(options.asg_name, kind),
        "AlarmDescription": f"{description} {_SOURCE}",
        "ActionsEnabled": True,
    }
    if options.alarm_topic is not None:
        params["AlarmActions"] = [options.alarm_topic]
        params["OKActions"] = [options.alarm_topic]
    params.update(fields)
    return ApiRequest("cloudwatch", "PutMetricAlarm", params)


def alarm_requests_build(
    *, spec: MetricSpec, options: PolicyOptions
) -> dict[AlarmKind, ApiRequest]:
    asg = options.asg_name
    wait = _number(options.alarm_wait_seconds)
    backlog = published_metric(spec)
    return {
        "publisher-silent": _request(
            kind="publisher-silent",
            options=options,
            description=(
                f"No {spec.metric_name} datapoint for {asg} for {SILENT_PERIODS} periods: the "
                "publisher is silent and target tracking holds still. Run `manage.py "
                "scaling_status`, check celery beat and the worker are running, and read the "
                "latest publications' errors (database, SQS, CloudWatch)."
            ),
            fields={
                **backlog,
                "Statistic": "SampleCount",
                "Period": spec.period_seconds,
                "EvaluationPeriods": SILENT_PERIODS,
                "DatapointsToAlarm": SILENT_PERIODS,
                "Threshold": 1.0,
                "ComparisonOperator": "LessThanThreshold",
                # The one alarm for which no data is the bad news.
                "TreatMissingData": "breaching",
            },
        ),
        "wait-too-long": _request(
            kind="wait-too-long",
            options=options,
            description=(
                f"The oldest waiting video has waited over {wait} s for {WAIT_PERIODS} minutes. "
                f"If {asg} is at its maximum, see the starved alarm; if it is scaling, give it "
                "its warmup; else check the workers take videos (worker logs, SQS queue)."
            ),
            fields={
                **published_metric(spec, spec.oldest_age_metric_name),
                "Statistic": "Maximum",
                "Period": ALARM_PERIOD,
                "EvaluationPeriods": WAIT_PERIODS,
                "DatapointsToAlarm": WAIT_PERIODS,
                "Threshold": float(options.alarm_wait_seconds),
                "ComparisonOperator": "GreaterThanThreshold",
                # Not published while nothing waits: nothing waiting is not waiting too long.
                "TreatMissingData": "notBreaching",
            },
        ),
        "starved": _request(
            kind="starved",
            options=options,
            description=(
                f"{asg} has been at its MaxSize for {STARVED_PERIODS} minutes with the backlog "
                f"still above the target {_number(options.target_value)}: the maximum is too "
                "low. Raise the group's MaxSize (or the target, if a longer wait is acceptable)."
            ),
            fields={
                "Metrics": [
                    _stat("m1", backlog, "Average"),
                    _stat("m2", group_metric(asg), "Average"),
                    _stat("m3", group_metric(asg, "GroupMaxSize"), "Average"),
                    {
                        "Id": "e1",
                        "Label": "Backlog above the target at MaxSize",
                        "Expression": starved_expression(options=options),
                        "ReturnData": True,
                    },
                ],
                "EvaluationPeriods": STARVED_PERIODS,
                "DatapointsToAlarm": STARVED_PERIODS,
                "Threshold": 1.0,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        ),
        "cannot-wake": _request(
            kind="cannot-wake",
            options=options,
            description=(
                f"Videos have waited {CANNOT_WAKE_PERIODS} minutes with no instance of {asg} in "
                "service: the wake alarm fired and nothing came up. Read the group's activity "
                "history (launch failures, capacity, quotas), check MaxSize is above 0 and the "
                "launch template is valid."
            ),
            fields={
                "Metrics": [
                    _stat("m1", backlog, "Maximum"),
                    _stat("m2", group_metric(asg, IN_SERVICE_METRIC), "Maximum"),
                    {
                        "Id": "e1",
                        "Label": "Backlog waiting with no instance in service",
                        "Expression": CANNOT_WAKE_EXPRESSION,
                        "ReturnData": True,
                    },
                ],
                "EvaluationPeriods": CANNOT_WAKE_PERIODS,
                "DatapointsToAlarm": CANNOT_WAKE_PERIODS,
                "Threshold": 1.0,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            },
        ),
        "work-lost": _request(
            kind="work-lost",
            options=options,
            description=(
                "Videos were taken back from workers whose lease expired (a worker died, was "
                "terminated or lost the API mid-job); they are processed again. Read the "
                f"activity history of {asg} (Spot interruptions, health replacements) and the "
                "worker logs; repeated alarms mean instances go away without draining."
            ),
            fields={
                **published_metric(spec, spec.recovered_metric_name),
                "Statistic": "Sum",
                "Period": ALARM_PERIOD,
                "EvaluationPeriods": 1,
                "DatapointsToAlarm": 1,
                "Threshold": 0.0,
                "ComparisonOperator": "GreaterThanThreshold",
                # Published only when lease recovery runs.
                "TreatMissingData": "notBreaching",
            },
        ),
    }


def alarms_delete_request_build(*, alarm_names: list[str]) -> ApiRequest:
    return ApiRequest("cloudwatch", "DeleteAlarms", {"AlarmNames": list(alarm_names)})
