"""install_scaling_policy --predictive: on the moto server (its policy read back through
DescribePolicies) and on a Stubber for the exact PutScalingPolicy request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command

from scaling.aws import aws_call_observers
from scaling.metric_spec import metric_spec_get
from scaling.models import MetricPublication
from scaling.policy.install import _send
from scaling.policy.options import policy_options_parse
from scaling.policy.predictive import FORECAST_FIRST_WARNING, predictive_policy_request_build
from scaling.policy.requests import PREDICTIVE_POLICY_NAME

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def _audit_rows(hours: float, *, fleet: str = "video") -> None:
    """Published rows an hour apart spanning ``hours`` (and a failed one older still)."""
    start = NOW - timedelta(hours=hours)
    steps = int(hours) + 1
    for step in range(steps):
        slot = min(start + timedelta(hours=step), NOW)
        MetricPublication.objects.create(
            fleet=fleet,
            slot_start=slot,
            interval_seconds=60,
            value=3,
            source="db",
            status="published",
            duration_ms=1.0,
            asg_name=ASG,
        )
    MetricPublication.objects.create(
        fleet=fleet,
        slot_start=start - timedelta(days=3),
        interval_seconds=60,
        value=None,
        status="failed",
        duration_ms=1.0,
        asg_name=ASG,
    )


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _predictive(aws: dict[str, str]) -> dict[str, Any] | None:
    client = boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])
    found = client.describe_policies(AutoScalingGroupName=ASG, PolicyNames=[PREDICTIVE_POLICY_NAME])
    policies = found["ScalingPolicies"]
    return dict(policies[0]) if policies else None


def _item(result: dict[str, Any]) -> dict[str, Any]:
    [item] = [i for i in result["items"] if i["kind"] == "predictive-policy"]
    return item


@pytest.fixture
def writes() -> Iterator[list[str]]:
    calls: list[str] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        if not operation.startswith(("Describe", "Get")):
            calls.append(operation)

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)


def test_predictive_policy_installs_reads_back_equal_and_a_second_run_writes_nothing(
    aws: dict[str, str], writes: list[str]
) -> None:
    _audit_rows(25)
    flags = ("--target-value", "4", "--predictive", "forecast-only", "--predictive-buffer", "600")

    first = _install(*flags)

    assert _item(first)["action"] == "created"
    assert first["predictive"] == {
        "mode": "ForecastOnly",
        "buffer_seconds": 600,
        "max_capacity": "HonorMaxCapacity",
        "max_buffer_percent": None,
    }
    policy = _predictive(aws)
    assert policy is not None
    [sent] = [
        r["params"]
        for r in first["requests"]
        if r["params"].get("PolicyType") == "PredictiveScaling"
    ]
    assert policy["PolicyType"] == "PredictiveScaling"
    assert policy["PredictiveScalingConfiguration"] == sent["PredictiveScalingConfiguration"]
    [spec] = policy["PredictiveScalingConfiguration"]["MetricSpecifications"]
    assert spec["TargetValue"] == 4.0
    load = spec["CustomizedLoadMetricSpecification"]["MetricDataQueries"]
    assert [(q["Id"], q["MetricStat"]["Stat"], q["ReturnData"]) for q in load] == [
        ("load", "Sum", True)
    ]
    scaling = spec["CustomizedScalingMetricSpecification"]["MetricDataQueries"]
    assert [(q["Id"], q.get("Expression"), q["ReturnData"]) for q in scaling] == [
        ("m1", None, False),
        ("m2", None, False),
        ("e1", "m1 / m2", True),
    ]
    assert scaling[1]["MetricStat"]["Metric"]["MetricName"] == "GroupInServiceInstances"
    writes.clear()

    again = _install(*flags)

    assert {i["action"] for i in again["items"]} == {"unchanged"}
    assert writes == []


def test_a_changed_value_is_updated_with_its_field_named(aws: dict[str, str]) -> None:
    _audit_rows(30)
    _install("--predictive", "forecast-only")

    result = _install(
        "--predictive",
        "forecast-and-scale",
        "--predictive-max-capacity",
        "increase",
        "--predictive-max-buffer",
        "10",
    )

    item = _item(result)
    assert item["action"] == "updated"
    assert [(c["path"], c["old"], c["new"]) for c in item["changes"]] == [
        (
            "PredictiveScalingConfiguration.MaxCapacityBreachBehavior",
            "HonorMaxCapacity",
            "IncreaseMaxCapacity",
        ),
        ("PredictiveScalingConfiguration.MaxCapacityBuffer", None, 10),
        ("PredictiveScalingConfiguration.Mode", "ForecastOnly", "ForecastAndScale"),
    ]
    assert FORECAST_FIRST_WARNING not in result["warnings"]  # a policy was installed before
    policy = _predictive(aws)
    assert policy is not None
    assert policy["PredictiveScalingConfiguration"]["Mode"] == "ForecastAndScale"


def test_forecast_and_scale_first_warns_that_aws_advises_forecast_only(
    aws: dict[str, str],
) -> None:
    _audit_rows(24)

    result = _install("--predictive", "forecast-and-scale")

    assert _item(result)["action"] == "created"
    assert FORECAST_FIRST_WARNING in result["warnings"]


def test_plain_install_keeps_it_off_removes_it_and_uninstall_removes_it(
    aws: dict[str, str],
) -> None:
    _audit_rows(24)
    _install("--predictive", "forecast-only")

    kept = _install()
    assert (_item(kept)["action"], _item(kept)["note"]) == ("kept", "--predictive off removes it")
    assert _predictive(aws) is not None

    off = _install("--predictive", "off")
    assert _item(off)["action"] == "removed"
    assert _predictive(aws) is None
    assert _item(_install("--predictive", "off"))["action"] == "absent"

    _install("--predictive", "forecast-only")
    uninstalled = _install("--uninstall")
    assert _item(uninstalled)["action"] == "removed"
    assert _predictive(aws) is None


def test_less_than_a_day_of_audit_rows_is_refused_with_the_sentence(aws: dict[str, str]) -> None:
    _audit_rows(5)
    oldest = NOW - timedelta(hours=5)

    with pytest.raises(CommandError) as caught:
        call_command("install_scaling_policy", "--predictive", "forecast-only", stdout=StringIO())

    assert str(caught.value) == (
        "--predictive needs 24 hours of published values and fleet video's audit trail holds "
        f"5.0 hours (since {oldest:%Y-%m-%d %H:%M} UTC): run target tracking until "
        f"{oldest + timedelta(hours=24):%Y-%m-%d %H:%M} UTC, then add --predictive."
    )
    assert caught.value.returncode == 1
    assert _predictive(aws) is None


def test_an_empty_audit_trail_is_refused(aws: dict[str, str]) -> None:
    _audit_rows(30, fleet="another")  # another fleet's rows do not count

    with pytest.raises(CommandError, match="fleet video's audit trail holds none: run target"):
        call_command("install_scaling_policy", "--predictive", "forecast-only", stdout=StringIO())


def test_dry_run_sends_nothing(aws: dict[str, str], writes: list[str]) -> None:
    _audit_rows(24)

    result = _install("--dry-run", "--predictive", "forecast-only")

    assert _item(result)["action"] == "created"
    assert any(r["params"].get("PolicyType") == "PredictiveScaling" for r in result["requests"])
    assert writes == []
    assert _predictive(aws) is None


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ("--predictive", "always"),
            "--predictive must be forecast-only, forecast-and-scale or off, got 'always'.",
        ),
        (
            ("--predictive-buffer", "60"),
            "--predictive-buffer needs --predictive forecast-only or forecast-and-scale.",
        ),
        (
            ("--predictive", "off", "--predictive-max-capacity", "honor"),
            "--predictive-max-capacity needs --predictive forecast-only or forecast-and-scale.",
        ),
        (
            ("--predictive", "forecast-only", "--predictive-buffer", "3600"),
            "--predictive-buffer must be a whole number of seconds from 0 to 3599, got '3600'.",
        ),
        (
            ("--predictive", "forecast-only", "--predictive-max-buffer", "10"),
            "--predictive-max-buffer needs --predictive-max-capacity increase (AWS takes "
            "MaxCapacityBuffer only with IncreaseMaxCapacity).",
        ),
        (
            ("--predictive", "forecast-only", "--predictive-max-capacity", "increase"),
            "--predictive-max-capacity increase needs --predictive-max-buffer PERCENT (0 to "
            "100: how far above the forecast the maximum may rise).",
        ),
        (
            (
                "--predictive",
                "forecast-only",
                "--predictive-max-capacity",
                "increase",
                "--predictive-max-buffer",
                "101",
            ),
            "--predictive-max-buffer must be a whole percentage from 0 to 100, got '101'.",
        ),
        (
            ("--predictive", "forecast-only", "--predictive-max-capacity", "raise"),
            "--predictive-max-capacity must be honor or increase, got 'raise'.",
        ),
        (
            ("--predictive", "forecast-only", "--mode", "total", "--target-value", "5"),
            "--predictive scales on backlog per in-service instance: it takes --mode "
            "per-instance, not --mode total.",
        ),
    ],
)
def test_bad_predictive_flags_get_one_sentence_and_exit_1(
    aws: dict[str, str], args: tuple[str, ...], sentence: str
) -> None:
    _audit_rows(30)

    with pytest.raises(CommandError) as caught:
        call_command("install_scaling_policy", *args, stdout=StringIO())

    assert str(caught.value) == sentence
    assert caught.value.returncode == 1


def test_the_exact_put_scaling_policy_request() -> None:
    """The whole request, held on a Stubber (moto accepts any shape)."""
    options = policy_options_parse(
        asg_name=ASG,
        mode=None,
        target_value="3",
        acceptable_wait=None,
        processing_time=None,
        warmup=None,
        predictive="forecast-and-scale",
        predictive_buffer="120",
        predictive_max_capacity="increase",
        predictive_max_buffer="20",
    )
    spec = metric_spec_get(asg_name=ASG)
    backlog = {
        "Namespace": spec.namespace,
        "MetricName": spec.metric_name,
        "Dimensions": spec.dimensions_api(),
    }
    expected = {
        "AutoScalingGroupName": ASG,
        "PolicyName": "academy-backlog-predictive",
        "PolicyType": "PredictiveScaling",
        "PredictiveScalingConfiguration": {
            "MetricSpecifications": [
                {
                    "TargetValue": 3.0,
                    "CustomizedScalingMetricSpecification": {
                        "MetricDataQueries": [
                            {
                                "Id": "m1",
                                "Label": "BacklogCount (videos waiting or processing)",
                                "MetricStat": {
                                    "Metric": backlog,
                                    "Unit": "Count",
                                    "Stat": "Average",
                                },
                                "ReturnData": False,
                            },
                            {
                                "Id": "m2",
                                "Label": "In-service instances",
                                "MetricStat": {
                                    "Metric": {
                                        "Namespace": "AWS/AutoScaling",
                                        "MetricName": "GroupInServiceInstances",
                                        "Dimensions": [
                                            {"Name": "AutoScalingGroupName", "Value": ASG}
                                        ],
                                    },
                                    "Stat": "Average",
                                },
                                "ReturnData": False,
                            },
                            {
                                "Id": "e1",
                                "Label": "Backlog per in-service instance",
                                "Expression": "m1 / m2",
                                "ReturnData": True,
                            },
                        ]
                    },
                    "CustomizedLoadMetricSpecification": {
                        "MetricDataQueries": [
                            {
                                "Id": "load",
                                "Label": "BacklogCount (the whole group's backlog)",
                                "MetricStat": {"Metric": backlog, "Unit": "Count", "Stat": "Sum"},
                                "ReturnData": True,
                            }
                        ]
                    },
                }
            ],
            "Mode": "ForecastAndScale",
            "SchedulingBufferTime": 120,
            "MaxCapacityBreachBehavior": "IncreaseMaxCapacity",
            "MaxCapacityBuffer": 20,
        },
    }
    client = boto3.client(
        "autoscaling",
        region_name="ap-northeast-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stub = Stubber(client)
    stub.activate()
    stub.add_response("put_scaling_policy", {"PolicyARN": "arn:x", "Alarms": []}, expected)

    _send(client, predictive_policy_request_build(spec=spec, options=options))

    stub.assert_no_pending_responses()
