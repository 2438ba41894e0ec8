"""The request builders and the diff, without AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scaling.metric_spec import metric_spec_get
from scaling.policy.diff import config_diff
from scaling.policy.options import PolicyOptions
from scaling.policy.requests import (
    metrics_collection_requests_build,
    target_policy_request_build,
    wake_alarm_request_build,
    wake_policy_request_build,
)


def _options(mode: str = "per-instance", target: float = 3.0) -> PolicyOptions:
    return PolicyOptions(
        asg_name="academy-video-worker-asg",
        mode=mode,  # type: ignore[arg-type]
        target_value=target,
        warmup_seconds=60,
        target_derivation="",
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
