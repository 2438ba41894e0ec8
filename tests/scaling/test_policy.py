"""The request builders and the diff, without AWS."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from scaling.metric_spec import metric_spec_get
from scaling.policy.alarms import ALARM_KINDS, alarm_requests_build
from scaling.policy.dashboard import dashboard_body_build
from scaling.policy.diff import config_diff
from scaling.policy.options import PolicyOptions
from scaling.policy.requests import (
    GROUP_METRICS,
    metrics_collection_requests_build,
    target_policy_request_build,
    wake_alarm_request_build,
    wake_policy_request_build,
)
from scaling.publishing.cloudwatch import metric_datums_build

ASG = "academy-video-worker-asg"


def _options(
    mode: str = "per-instance", target: float = 3.0, wait: float = 600.0, topic: str | None = None
) -> PolicyOptions:
    return PolicyOptions(
        asg_name=ASG,
        mode=mode,  # type: ignore[arg-type]
        target_value=target,
        warmup_seconds=60,
        target_derivation="",
        alarm_wait_seconds=wait,
        alarm_topic=topic,
    )


@pytest.mark.parametrize("interval", ["10", "30", "60"])
@pytest.mark.parametrize("mode", ["per-instance", "total"])
def test_no_request_ever_carries_a_cooldown(settings: Any, interval: str, mode: str) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = interval
    spec = metric_spec_get()
    options = _options(mode)
    requests = [
        target_policy_request_build(spec=spec, options=options),
        wake_policy_request_build(options=options),
        wake_alarm_request_build(spec=spec, options=options, wake_policy_arn="arn:x"),
        *metrics_collection_requests_build(asg_name=options.asg_name),
        *alarm_requests_build(spec=spec, options=options).values(),
    ]

    text = json.dumps([r.params for r in requests])

    assert "Cooldown" not in text


@pytest.mark.parametrize(("interval", "period"), [("10", 10), ("30", 30), ("60", None)])
def test_period_comes_from_the_spec(settings: Any, interval: str, period: int | None) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = interval
    spec = metric_spec_get()

    total = target_policy_request_build(spec=spec, options=_options("total")).params
    per = target_policy_request_build(spec=spec, options=_options()).params

    custom = total["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]
    assert custom.get("Period") == period
    metrics = per["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    assert [m["MetricStat"].get("Period") for m in metrics[:2]] == [period, period]
    assert [m["ReturnData"] for m in metrics] == [False, False, True]


def test_only_the_final_expression_returns_data() -> None:
    params = target_policy_request_build(spec=metric_spec_get(), options=_options()).params
    alarm = wake_alarm_request_build(
        spec=metric_spec_get(), options=_options(), wake_policy_arn="a"
    )

    for metrics in (
        params["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"],
        alarm.params["Metrics"],
    ):
        assert [m["Id"] for m in metrics if m["ReturnData"]] == [metrics[-1]["Id"]]
        assert "Expression" in metrics[-1]


def test_diff_ignores_what_aws_adds_and_defaults_it_leaves_out() -> None:
    desired = {
        "PolicyName": "p",
        "Enabled": True,
        "TargetTrackingConfiguration": {"TargetValue": 3.0},
    }
    actual = {
        "PolicyName": "p",
        "PolicyARN": "arn:aws:autoscaling:...",
        "Alarms": [{"AlarmName": "TargetTracking-AlarmHigh"}],
        "StepAdjustments": [],
        "TargetTrackingConfiguration": {"TargetValue": 3, "DisableScaleIn": False},
    }

    assert config_diff(desired=desired, actual=actual) == []


def test_diff_names_each_changed_field() -> None:
    desired = {"EstimatedInstanceWarmup": 120, "TargetTrackingConfiguration": {"TargetValue": 5.0}}
    actual = {
        "EstimatedInstanceWarmup": 60,
        "Cooldown": 300,
        "TargetTrackingConfiguration": {"TargetValue": 3.0},
    }

    assert [c.line() for c in config_diff(desired=desired, actual=actual)] == [
        "Cooldown: 300 -> (absent)",
        "EstimatedInstanceWarmup: 60 -> 120",
        "TargetTrackingConfiguration.TargetValue: 3.0 -> 5.0",
    ]


# The alarms, evaluated by hand ------------------------------------------------------
#
# moto stores alarms but never evaluates them. This is CloudWatch's evaluation, small:
# each period's samples -> the statistic (no samples: no datapoint), metric math on
# those datapoints (a missing input: no datapoint), TreatMissingData, then M of N.

Samples = Sequence[Sequence[float]]  # per period, the raw values published in it
_STATS: dict[str, Callable[[Sequence[float]], float]] = {
    "SampleCount": lambda v: float(len(v)),
    "Sum": lambda v: float(sum(v)),
    "Maximum": lambda v: float(max(v)),
    "Minimum": lambda v: float(min(v)),
    "Average": lambda v: float(sum(v)) / len(v),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda a, b: a > b,
    "GreaterThanOrEqualToThreshold": lambda a, b: a >= b,
    "LessThanThreshold": lambda a, b: a < b,
    "LessThanOrEqualToThreshold": lambda a, b: a <= b,
}
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|>=|<=|==|!=|[-+*/(),<>])")


def _stat(samples: Sequence[float], stat: str) -> float | None:
    return _STATS[stat](samples) if samples else None


def expression_evaluate(expression: str, values: Mapping[str, float | None]) -> float | None:
    """The metric-math subset the alarms use: numbers, ids, + - * /, comparisons,
    AND, OR and IF(condition, then, else). A missing input gives no datapoint."""
    tokens = _TOKEN.findall(expression)
    assert "".join(tokens) == expression.replace(" ", ""), expression
    position = 0

    def take(expected: str | None = None) -> str:
        nonlocal position
        token = tokens[position]
        assert expected is None or token == expected, (expected, token)
        position += 1
        return token

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    Value = float | None

    def binary(left: Value, right: Value, op: Callable[[float, float], float]) -> Value:
        return None if left is None or right is None else op(left, right)

    def atom() -> Value:
        token = take()
        if token == "(":
            value = either()
            take(")")
            return value
        if token == "IF":
            take("(")
            condition = either()
            take(",")
            then = either()
            take(",")
            otherwise = either()
            take(")")
            return None if condition is None else (then if condition else otherwise)
        if token[0].isdigit():
            return float(token)
        return values[token]

    def product() -> Value:
        value = atom()
        while peek() in ("*", "/"):
            if take() == "*":
                value = binary(value, atom(), lambda a, b: a * b)
            else:
                value = binary(value, atom(), lambda a, b: a / b)
        return value

    def total() -> Value:
        value = product()
        while peek() in ("+", "-"):
            if take() == "+":
                value = binary(value, product(), lambda a, b: a + b)
            else:
                value = binary(value, product(), lambda a, b: a - b)
        return value

    def comparison() -> Value:
        value = total()
        ops = {
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
        }
        if peek() in ops:
            op = ops[take()]
            value = binary(value, total(), lambda a, b: float(op(a, b)))
        return value

    def both() -> Value:
        value = comparison()
        while peek() == "AND":
            take()
            value = binary(value, comparison(), lambda a, b: float(bool(a) and bool(b)))
        return value

    def either() -> Value:
        value = both()
        while peek() == "OR":
            take()
            value = binary(value, both(), lambda a, b: float(bool(a) or bool(b)))
        return value

    result = either()
    assert position == len(tokens), expression
    return result


def alarm_states(params: Mapping[str, Any], series: Mapping[str, Samples]) -> list[str]:
    """The alarm's state after each period. ``series`` maps a metric name (single-metric
    alarm) or a query id (metric math) to its samples per period."""
    periods = len(next(iter(series.values())))
    datapoints: list[float | None] = []
    for index in range(periods):
        if "Metrics" in params:
            values = {
                q["Id"]: _stat(series[q["Id"]][index], q["MetricStat"]["Stat"])
                for q in params["Metrics"]
                if "MetricStat" in q
            }
            [final] = [q for q in params["Metrics"] if q["ReturnData"]]
            datapoints.append(expression_evaluate(final["Expression"], values))
        else:
            datapoints.append(_stat(series[params["MetricName"]][index], params["Statistic"]))
    compare = _COMPARE[params["ComparisonOperator"]]
    missing_breaches = params["TreatMissingData"] == "breaching"
    states = []
    for end in range(1, periods + 1):
        window = datapoints[max(0, end - params["EvaluationPeriods"]) : end]
        breaching = sum(
            missing_breaches if v is None else compare(v, params["Threshold"]) for v in window
        )
        states.append("ALARM" if breaching >= params["DatapointsToAlarm"] else "OK")
    return states


def _alarm(kind: str, **options: Any) -> dict[str, Any]:
    return alarm_requests_build(spec=metric_spec_get(), options=_options(**options))[
        kind  # type: ignore[index]
    ].params


def test_the_evaluator_reads_the_wake_alarm_as_documented() -> None:
    wake = wake_alarm_request_build(spec=metric_spec_get(), options=_options(), wake_policy_arn="a")
    series = {"m1": [[2], [2], [0]], "m2": [[0], [1], [0]]}

    assert alarm_states(wake.params, series) == ["ALARM", "OK", "OK"]


@pytest.mark.parametrize("interval", ["10", "60"])
def test_publisher_silent_breaches_on_a_gap_of_three_periods_not_two(
    settings: Any, interval: str
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = interval
    alarm = _alarm("publisher-silent")
    name = metric_spec_get().metric_name

    assert alarm["Period"] == int(interval)
    assert alarm_states(alarm, {name: [[4], [], [], [5], [0]]}) == ["OK"] * 5
    assert alarm_states(alarm, {name: [[4], [], [], [], [0]]}) == [
        "OK",
        "OK",
        "OK",
        "ALARM",
        "OK",
    ]
    # A published 0 is a datapoint: an empty backlog is not silence.
    assert alarm_states(alarm, {name: [[0]] * 5}) == ["OK"] * 5


def test_only_the_silent_alarm_treats_missing_data_as_breaching() -> None:
    alarms = alarm_requests_build(spec=metric_spec_get(), options=_options())

    assert {kind: a.params["TreatMissingData"] for kind, a in alarms.items()} == {
        "publisher-silent": "breaching",
        "wait-too-long": "notBreaching",
        "starved": "notBreaching",
        "cannot-wake": "notBreaching",
        "work-lost": "notBreaching",
    }


def test_waiting_too_long_needs_five_minutes_over_the_wait() -> None:
    alarm = _alarm("wait-too-long", wait=600.0)
    name = metric_spec_get().oldest_age_metric_name

    assert alarm_states(alarm, {name: [[650, 700]] * 5}) == ["OK"] * 4 + ["ALARM"]
    assert alarm_states(alarm, {name: [[700]] * 4 + [[600]]}) == ["OK"] * 5
    # Nothing waiting publishes no age: that is not waiting too long.
    assert alarm_states(alarm, {name: [[700]] * 3 + [[], []]}) == ["OK"] * 5


def _starved_series(backlog: float, in_service: float, max_size: float) -> dict[str, Samples]:
    return {"m1": [[backlog]] * 10, "m2": [[in_service]] * 10, "m3": [[max_size]] * 10}


@pytest.mark.parametrize(
    ("backlog", "in_service", "max_size", "state"),
    [
        (13, 4, 4, "ALARM"),  # 13 / 4 = 3.25 per instance > 3, and at the maximum
        (12, 4, 4, "OK"),  # 3 per instance: on target
        (13, 3, 4, "OK"),  # above target but below the maximum: target tracking adds
        (13, 4, 5, "OK"),  # the maximum was raised: room to grow
        (40, 10, 10, "ALARM"),  # per instance, not the raw count, drives it
        (29, 10, 10, "OK"),  # 29 > 3 raw, but 2.9 per instance
        (1, 0, 0, "ALARM"),  # MaxSize 0 with a video waiting: the maximum is too low
        (0, 0, 0, "OK"),
    ],
)
def test_starved_is_driven_by_backlog_per_instance_and_the_maximum(
    backlog: float, in_service: float, max_size: float, state: str
) -> None:
    alarm = _alarm("starved", target=3.0)

    states = alarm_states(alarm, _starved_series(backlog, in_service, max_size))

    assert states == ["OK"] * 9 + [state]


def test_starved_needs_ten_minutes() -> None:
    alarm = _alarm("starved", target=3.0)
    series = _starved_series(13, 4, 4)
    series["m2"] = [[3]] + [[4]] * 9  # reached the maximum one minute late

    assert alarm_states(alarm, series) == ["OK"] * 10


def test_starved_in_total_mode_compares_the_raw_count() -> None:
    alarm = _alarm("starved", mode="total", target=3.0)

    assert alarm_states(alarm, _starved_series(4, 10, 10))[-1] == "ALARM"
    assert alarm_states(alarm, _starved_series(3, 10, 10))[-1] == "OK"


def test_cannot_wake_needs_five_minutes_of_backlog_with_nothing_in_service() -> None:
    alarm = _alarm("cannot-wake")

    assert alarm_states(alarm, {"m1": [[2]] * 5, "m2": [[0]] * 5}) == ["OK"] * 4 + ["ALARM"]
    assert alarm_states(alarm, {"m1": [[2]] * 5, "m2": [[0]] * 4 + [[1]]}) == ["OK"] * 5
    assert alarm_states(alarm, {"m1": [[0]] * 5, "m2": [[0]] * 5}) == ["OK"] * 5
    # No group metric (collection off) is no datapoint, never an alarm.
    assert alarm_states(alarm, {"m1": [[2]] * 5, "m2": [[]] * 5}) == ["OK"] * 5


def test_work_lost_fires_on_any_recovered_video() -> None:
    alarm = _alarm("work-lost")
    name = metric_spec_get().recovered_metric_name

    assert alarm_states(alarm, {name: [[0], [0, 0], [0, 1], [], [0]]}) == [
        "OK",
        "OK",
        "ALARM",
        "OK",
        "OK",
    ]


def test_every_alarm_says_what_to_do_and_notifies_the_topic_when_given() -> None:
    topic = "arn:aws:sns:ap-northeast-2:123456789012:academy-scaling"
    with_topic = alarm_requests_build(spec=metric_spec_get(), options=_options(topic=topic))
    without = alarm_requests_build(spec=metric_spec_get(), options=_options())

    assert list(with_topic) == list(ALARM_KINDS)
    for kind in ALARM_KINDS:
        params = with_topic[kind].params
        assert (params["AlarmActions"], params["OKActions"]) == ([topic], [topic])
        assert not {"AlarmActions", "OKActions"} & set(without[kind].params)
        description = params["AlarmDescription"]
        assert len(description) <= 1024
        assert re.search(r"\b(Run|Raise|Read|check|Check|If)\b", description), kind


# The dashboard ----------------------------------------------------------------------

_WIDGET_TYPES = {"metric", "text", "alarm", "log", "explorer"}
_GROUP_ARN = (
    f"arn:aws:autoscaling:ap-northeast-2:123456789012:autoScalingGroup:"
    f"00000000-0000-0000-0000-000000000000:autoScalingGroupName/{ASG}"
)


def dashboard_metrics_check(body: Mapping[str, Any], *, region: str) -> list[list[Any]]:
    """The body's shape as PutDashboard documents it; returns every metric array."""
    assert set(body) <= {"start", "end", "periodOverride", "widgets", "variables"}
    assert body.get("periodOverride", "auto") in ("auto", "inherit")
    assert 0 <= len(body["widgets"]) <= 500
    metrics: list[list[Any]] = []
    for widget in body["widgets"]:
        assert widget["type"] in _WIDGET_TYPES
        assert 1 <= widget["width"] <= 24
        assert 1 <= widget["height"] <= 1000
        assert 0 <= widget["x"] <= 24 - widget["width"]
        assert widget["y"] >= 0
        properties = widget["properties"]
        if widget["type"] == "alarm":
            assert 1 <= len(properties["alarms"]) <= 100
            for arn in properties["alarms"]:
                assert re.fullmatch(rf"arn:aws:cloudwatch:{region}:\d{{12}}:alarm:.+", arn)
            continue
        assert properties["region"] == region
        assert properties.get("metrics") or properties["annotations"]["alarms"]
        ids = {m[-1]["id"] for m in properties.get("metrics", []) if "id" in m[-1]}
        for metric in properties.get("metrics", []):
            if len(metric) == 1 and "expression" in metric[0]:
                used = set(re.findall(r"\bm\d+\b", metric[0]["expression"]))
                assert used <= ids, metric
                continue
            assert "..." not in metric  # no shorthand: every metric spelled out in full
            metrics.append(metric)
    return metrics


@pytest.mark.parametrize("interval", ["10", "60"])
@pytest.mark.parametrize("mode", ["per-instance", "total"])
def test_every_dashboard_metric_has_exactly_the_published_dimensions(
    settings: Any, interval: str, mode: str
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = interval
    spec = metric_spec_get()
    body = json.loads(
        json.dumps(
            dashboard_body_build(
                spec=spec, options=_options(mode), region="ap-northeast-2", group_arn=_GROUP_ARN
            )
        )
    )
    datums = metric_datums_build(
        spec=spec,
        timestamp=datetime.now(UTC),
        backlog=1,
        oldest_age_seconds=5.0,
        recovered=0,
        busy_instances=1,
        protected_instances=1,
    )
    published = {
        (d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"])) for d in datums
    }

    metrics = dashboard_metrics_check(body, region="ap-northeast-2")

    seen = set()
    for metric in metrics:
        namespace, name, *rest = metric
        options = rest.pop() if rest and isinstance(rest[-1], dict) else {}
        dimensions = tuple(zip(rest[::2], rest[1::2], strict=True))
        if namespace == spec.namespace:
            assert (name, dimensions) in published
            assert options.get("period", 60) == spec.period_seconds or name != spec.metric_name
        else:
            assert namespace == "AWS/AutoScaling"
            assert name in GROUP_METRICS
            assert dimensions == (("AutoScalingGroupName", ASG),)
        seen.add(name)
    assert {spec.metric_name, spec.recovered_metric_name, *GROUP_METRICS} <= seen


def test_dashboard_shows_the_target_line_and_every_alarm() -> None:
    body = dashboard_body_build(
        spec=metric_spec_get(),
        options=_options(target=4.5),
        region="ap-northeast-2",
        group_arn=_GROUP_ARN,
    )
    titles = [w["properties"]["title"] for w in body["widgets"]]

    assert body["widgets"][1]["properties"]["annotations"]["horizontal"] == [
        {"label": "target 4.5", "value": 4.5}
    ]
    assert body["widgets"][1]["properties"]["metrics"][2] == [
        {"id": "e1", "expression": "m1 / m2", "label": "Backlog per in-service instance"}
    ]
    [alarms] = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert [arn.rsplit(":", 1)[1] for arn in alarms["properties"]["alarms"]] == [
        *(f"{ASG}-scaling-{kind}" for kind in ALARM_KINDS),
        f"{ASG}-backlog-wake-from-zero",
    ]
    assert titles == [
        "Published backlog (BacklogCount: videos waiting or processing)",
        "Backlog per in-service instance and the target",
        "Instances: desired, in service, maximum",
        "Oldest waiting video (s) and the acceptable wait",
        "Videos recovered from lost leases (RecoveredVideos)",
        "Fleet: busy and protected instances (BusyInstances, ProtectedInstances)",
        "Scaling alarms",
    ]
