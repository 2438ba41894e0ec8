"""install_scaling_policy against a moto server holding the real group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command

from scaling.aws import aws_call_observers
from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.metric_spec import metric_spec_get
from scaling.policy.alarms import alarm_names, alarm_requests_build
from scaling.policy.dashboard import dashboard_body_build, dashboard_name
from scaling.policy.diff import config_diff
from scaling.policy.hook import hook_installed, hook_request_build
from scaling.policy.options import policy_options_parse
from scaling.policy.requests import TARGET_POLICY_NAME, WAKE_POLICY_NAME, wake_alarm_name
from scaling.publishing.cloudwatch import metric_datums_build

# The installer reads the fleet's scale-in pause (scaling_pause) from the database.
pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
REPO = Path(__file__).resolve().parents[2]
COOLDOWN_KEYS = ("Cooldown", "ScaleOutCooldown", "ScaleInCooldown")
READS = ("Describe", "Get")
GROUP_METRICS_ENABLED = [
    {"Metric": name, "Granularity": "1Minute"}
    for name in ("GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize")
]
METRICS_LINE = (
    "metrics-collection GroupInServiceInstances, GroupDesiredCapacity, GroupMaxSize (1Minute)"
)
ALARM_KINDS_CREATED = {
    "publisher-silent-alarm": "created",
    "wait-too-long-alarm": "created",
    "starved-alarm": "created",
    "cannot-wake-alarm": "created",
    "work-lost-alarm": "created",
    "dashboard": "created",
    "lifecycle-hook": "created",
}


def _unchanged_tail() -> list[str]:
    """The lines of the five alarms and the dashboard when nothing about them changed."""
    return [
        *(f"{kind}-alarm {name}: unchanged" for kind, name in alarm_names(ASG).items()),
        f"dashboard {dashboard_name(ASG)}: unchanged",
        f"lifecycle-hook {LIFECYCLE_HOOK_NAME}: unchanged",
    ]


def _autoscaling(aws: dict[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _cloudwatch(aws: dict[str, str]) -> Any:
    return boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _policies(aws: dict[str, str]) -> dict[str, dict[str, Any]]:
    found = _autoscaling(aws).describe_policies(AutoScalingGroupName=ASG)["ScalingPolicies"]
    return {p["PolicyName"]: p for p in found}


def _group(aws: dict[str, str]) -> dict[str, Any]:
    group = _autoscaling(aws).describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    return dict(group["AutoScalingGroups"][0])


def _alarms(aws: dict[str, str]) -> list[dict[str, Any]]:
    return list(_cloudwatch(aws).describe_alarms()["MetricAlarms"])


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _actions(result: Mapping[str, Any]) -> dict[str, str]:
    return {item["kind"]: item["action"] for item in result["items"]}


def _publisher_dimensions() -> list[dict[str, str]]:
    datums = metric_datums_build(
        spec=metric_spec_get(), timestamp=datetime.now(UTC), backlog=1, oldest_age_seconds=None
    )
    return list(datums[0]["Dimensions"])


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        calls.append((service, operation, dict(params)))

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)


# What is installed ------------------------------------------------------------------


def test_per_instance_policy_reads_back_as_the_spec(aws: dict[str, str]) -> None:
    result = _install("--target-value", "5", "--warmup", "90")

    assert _actions(result) == {
        "metrics-collection": "created",
        "target-tracking-policy": "created",
        "wake-policy": "created",
        "wake-alarm": "created",
        **ALARM_KINDS_CREATED,
    }
    policy = _policies(aws)[TARGET_POLICY_NAME]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["EstimatedInstanceWarmup"] == 90
    config = policy["TargetTrackingConfiguration"]
    assert config["TargetValue"] == 5.0
    assert config["DisableScaleIn"] is False
    metrics = config["CustomizedMetricSpecification"]["Metrics"]
    assert [(m["Id"], m.get("Expression"), m["ReturnData"]) for m in metrics] == [
        ("m1", None, False),
        ("m2", None, False),
        ("e1", "m1 / m2", True),
    ]
    backlog, in_service = metrics[0]["MetricStat"], metrics[1]["MetricStat"]
    assert backlog["Metric"]["Namespace"] == "Academy/VideoProcessing"
    assert backlog["Metric"]["MetricName"] == "BacklogCount"
    assert backlog["Metric"]["Dimensions"] == _publisher_dimensions()
    assert (backlog["Stat"], backlog["Unit"]) == ("Average", "Count")
    assert in_service["Metric"] == {
        "Namespace": "AWS/AutoScaling",
        "MetricName": "GroupInServiceInstances",
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": ASG}],
    }
    assert "Period" not in backlog  # 60 s, the API default
    assert _group(aws)["EnabledMetrics"] == GROUP_METRICS_ENABLED


def test_wake_from_zero_policy_and_alarm(aws: dict[str, str]) -> None:
    _install()

    wake = _policies(aws)[WAKE_POLICY_NAME]
    assert (wake["PolicyType"], wake["AdjustmentType"], wake["StepAdjustments"]) == (
        "StepScaling",
        "ChangeInCapacity",
        [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
    )
    [alarm] = [a for a in _alarms(aws) if a["AlarmName"] == wake_alarm_name(ASG)]
    assert alarm["AlarmActions"] == [wake["PolicyARN"]]
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        1.0,
        "GreaterThanOrEqualToThreshold",
        "notBreaching",
    )
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    assert queries["e1"]["Expression"] == "IF(m1 > 0 AND m2 == 0, 1, 0)"
    assert queries["e1"]["ReturnData"] is True
    assert queries["m1"]["MetricStat"]["Metric"]["Dimensions"] == _publisher_dimensions()
    assert queries["m2"]["MetricStat"]["Metric"]["MetricName"] == "GroupInServiceInstances"


def test_sub_minute_interval_puts_the_period_in_every_metric_stat(
    aws: dict[str, str], settings: Any
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "10"

    _install()

    metrics = _policies(aws)[TARGET_POLICY_NAME]["TargetTrackingConfiguration"][
        "CustomizedMetricSpecification"
    ]["Metrics"]
    assert [m["MetricStat"].get("Period") for m in metrics[:2]] == [10, 10]
    assert metrics[2]["Expression"] == "m1 / FILL(m2, REPEAT)"


def test_total_mode_reproduces_the_old_policy_and_warns(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = StringIO()
    call_command("install_scaling_policy", "--mode", "total", stdout=out)

    policy = _policies(aws)[TARGET_POLICY_NAME]
    assert policy["TargetTrackingConfiguration"] == {
        "CustomizedMetricSpecification": {
            "MetricName": "BacklogCount",
            "Namespace": "Academy/VideoProcessing",
            "Dimensions": _publisher_dimensions(),
            "Statistic": "Average",
            "Unit": "Count",
        },
        "TargetValue": 3.0,
        "DisableScaleIn": False,
    }
    warnings = [line for line in out.getvalue().splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1
    assert "over-scaling" in warnings[0]


def test_derived_target_shows_its_derivation(aws: dict[str, str]) -> None:
    out = StringIO()
    call_command(
        "install_scaling_policy", "--acceptable-wait", "600", "--processing-time", "120", stdout=out
    )

    assert out.getvalue().splitlines()[0] == (
        f"Group {ASG} (ap-northeast-2), mode per-instance: target 5 = acceptable wait 600 s "
        "/ processing time 120 s per video (videos waiting per in-service instance); "
        "warmup 60 s; alarm wait 600 s; drain timeout 240 s."
    )
    assert _policies(aws)[TARGET_POLICY_NAME]["TargetTrackingConfiguration"]["TargetValue"] == 5


# Idempotence, updates, dry run, uninstall -----------------------------------------


def test_rerun_is_idempotent(aws: dict[str, str], recorded: list[Any]) -> None:
    _install()
    recorded.clear()

    out = StringIO()
    call_command("install_scaling_policy", stdout=out)

    assert out.getvalue().splitlines()[1:] == [
        f"{METRICS_LINE}: unchanged",
        "target-tracking-policy academy-backlog-target-tracking: unchanged",
        "wake-policy academy-backlog-wake-from-zero: unchanged",
        f"wake-alarm {wake_alarm_name(ASG)}: unchanged",
        *_unchanged_tail(),
        "Done: 11 unchanged.",
    ]
    assert sorted(_policies(aws)) == [TARGET_POLICY_NAME, WAKE_POLICY_NAME]
    assert len(_alarms(aws)) == 6
    assert [op for _, op, _ in recorded if not op.startswith(READS)] == []


def test_a_difference_is_updated_and_shown(aws: dict[str, str]) -> None:
    _install()

    out = StringIO()
    call_command("install_scaling_policy", "--target-value", "4.5", stdout=out)

    names = alarm_names(ASG)
    assert out.getvalue().splitlines()[1:] == [
        f"{METRICS_LINE}: unchanged",
        "target-tracking-policy academy-backlog-target-tracking: updated",
        "  TargetTrackingConfiguration.TargetValue: 3.0 -> 4.5",
        "wake-policy academy-backlog-wake-from-zero: unchanged",
        f"wake-alarm {wake_alarm_name(ASG)}: unchanged",
        f"publisher-silent-alarm {names['publisher-silent']}: unchanged",
        f"wait-too-long-alarm {names['wait-too-long']}: unchanged",
        # The starved alarm and the dashboard's target line follow the target.
        f"starved-alarm {names['starved']}: updated",
        '  AlarmDescription: "academy-video-worker-asg has been at its MaxSize for 10 minutes '
        "with the backlog still above the target 3: the maximum is too low. Raise the group's "
        "MaxSize (or the target, if a longer wait is acceptable). Installed by manage.py "
        'install_scaling_policy." -> "academy-video-worker-asg has been at its MaxSize for '
        "10 minutes with the backlog still above the target 4.5: the maximum is too low. "
        "Raise the group's MaxSize (or the target, if a longer wait is acceptable). Installed "
        'by manage.py install_scaling_policy."',
        '  Metrics[3].Expression: "IF(m2 >= m3 AND m1 > 3 * m2, 1, 0)" -> '
        '"IF(m2 >= m3 AND m1 > 4.5 * m2, 1, 0)"',
        f"cannot-wake-alarm {names['cannot-wake']}: unchanged",
        f"work-lost-alarm {names['work-lost']}: unchanged",
        f"dashboard {dashboard_name(ASG)}: updated",
        '  widgets[1].properties.annotations.horizontal[0].label: "target 3" -> "target 4.5"',
        "  widgets[1].properties.annotations.horizontal[0].value: 3.0 -> 4.5",
        f"lifecycle-hook {LIFECYCLE_HOOK_NAME}: unchanged",
        "Done: 8 unchanged, 3 updated.",
    ]
    assert sorted(_policies(aws)) == [TARGET_POLICY_NAME, WAKE_POLICY_NAME]


def test_dry_run_prints_the_requests_and_writes_nothing(
    aws: dict[str, str], recorded: list[Any]
) -> None:
    result = _install("--dry-run", "--target-value", "2")

    assert {op for _, op, _ in recorded} == {
        "DescribeAutoScalingGroups",
        "DescribePolicies",
        "DescribeAlarms",
        "GetDashboard",
        "DescribeLifecycleHooks",
        "DescribeWarmPool",  # left as it is without --warm-pool, but read (kept / absent)
    }
    assert [(r["service"], r["operation"]) for r in result["requests"]] == [
        ("autoscaling", "EnableMetricsCollection"),
        ("autoscaling", "CreateOrUpdateTags"),
        ("autoscaling", "PutScalingPolicy"),
        ("autoscaling", "PutScalingPolicy"),
        *[("cloudwatch", "PutMetricAlarm")] * 6,
        ("cloudwatch", "PutDashboard"),
        ("autoscaling", "PutLifecycleHook"),
    ]
    assert result["requests"][2]["params"]["TargetTrackingConfiguration"]["TargetValue"] == 2.0
    assert _policies(aws) == {}
    assert _alarms(aws) == []
    assert _cloudwatch(aws).list_dashboards()["DashboardEntries"] == []
    assert _group(aws)["EnabledMetrics"] == []


def test_dry_run_requests_are_what_a_real_run_sends(
    aws: dict[str, str], recorded: list[Any]
) -> None:
    _install()
    planned = _install("--dry-run", "--warmup", "300")["requests"]
    recorded.clear()

    _install("--warmup", "300")

    sent = [
        {"service": s, "operation": op, "params": params}
        for s, op, params in recorded
        if not op.startswith(READS)
    ]
    assert sent == planned
    assert [r["params"]["PolicyName"] for r in planned] == [TARGET_POLICY_NAME, WAKE_POLICY_NAME]


def _group_shape(group: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in ("EnabledMetrics", "CreatedTime")}


def test_uninstall_leaves_the_group_as_it_was(aws: dict[str, str], recorded: list[Any]) -> None:
    before = _group(aws)
    _install()
    recorded.clear()

    out = StringIO()
    call_command("install_scaling_policy", "--uninstall", stdout=out)

    after = _group(aws)
    assert _policies(aws) == {}
    assert _alarms(aws) == []
    assert _group_shape(after) == _group_shape(before)  # tags, sizes, everything else
    assert _cloudwatch(aws).list_dashboards()["DashboardEntries"] == []
    disable = [p for _, op, p in recorded if op == "DisableMetricsCollection"]
    assert disable == [
        {
            "AutoScalingGroupName": ASG,
            "Metrics": ["GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize"],
        }
    ]
    # moto has no DisableMetricsCollection: the command says so instead of pretending.
    assert (
        "Warning: GroupInServiceInstances, GroupDesiredCapacity, GroupMaxSize collection stays "
        "enabled on academy-video-worker-asg: this endpoint does not implement "
        "DisableMetricsCollection."
    ) in out.getvalue().splitlines()


def test_uninstall_removes_only_what_the_command_installed(aws: dict[str, str]) -> None:
    autoscaling = _autoscaling(aws)
    autoscaling.enable_metrics_collection(
        AutoScalingGroupName=ASG, Metrics=["GroupInServiceInstances"], Granularity="1Minute"
    )
    autoscaling.put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName="someone-elses-cpu-policy",
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
            "TargetValue": 60.0,
        },
    )
    installed = _install()
    assert installed["items"][0]["action"] == "updated"
    assert installed["items"][0]["note"] == (
        "GroupInServiceInstances enabled outside this command; --uninstall keeps them"
    )
    assert installed["items"][0]["changes"] == [
        {
            "path": "EnabledMetrics",
            "old": ["GroupInServiceInstances"],
            "new": ["GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize"],
        }
    ]
    assert installed["requests"][1]["params"]["Tags"][0]["Value"] == (
        "GroupDesiredCapacity GroupMaxSize"
    )

    result = _install("--uninstall")

    assert _actions(result) == {
        "wake-alarm": "removed",
        "target-tracking-policy": "removed",
        "wake-policy": "removed",
        "metrics-collection": "kept",  # moto: DisableMetricsCollection is not implemented
        **{kind: "removed" for kind in ALARM_KINDS_CREATED},
    }
    assert list(_policies(aws)) == ["someone-elses-cpu-policy"]
    disable = [r["params"] for r in result["requests"] if "Disable" in r["operation"]]
    # Only what this command enabled: GroupInServiceInstances stays.
    assert disable == [
        {"AutoScalingGroupName": ASG, "Metrics": ["GroupDesiredCapacity", "GroupMaxSize"]}
    ]


def test_recorded_requests_never_carry_a_cooldown(aws: dict[str, str], recorded: list[Any]) -> None:
    _install()
    _install("--mode", "total", "--warmup", "0")
    _install("--acceptable-wait", "300", "--processing-time", "45")
    _install("--uninstall")

    puts = [params for _, op, params in recorded if op == "PutScalingPolicy"]
    assert {p["PolicyType"] for p in puts} == {"TargetTrackingScaling", "StepScaling"}
    for params in puts:
        assert not set(COOLDOWN_KEYS) & set(params), params
        text = json.dumps(params)
        assert all(key not in text for key in COOLDOWN_KEYS), params


# The alarms and the dashboard ----------------------------------------------------------

TOPIC = "arn:aws:sns:ap-northeast-2:123456789012:academy-scaling-alarms"


def _asked(aws: dict[str, str], **flags: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The five alarms' requests by name, and the dashboard body, for these flags."""
    options = policy_options_parse(
        asg_name=None,
        mode=None,
        target_value=None,
        acceptable_wait=flags.get("acceptable_wait"),
        processing_time=flags.get("processing_time"),
        warmup=None,
        alarm_wait=flags.get("alarm_wait"),
        alarm_topic=flags.get("alarm_topic"),
    )
    spec = metric_spec_get()
    alarms = {
        r.params["AlarmName"]: r.params
        for r in alarm_requests_build(spec=spec, options=options).values()
    }
    group_arn = _group(aws)["AutoScalingGroupARN"]
    body = dashboard_body_build(
        spec=spec, options=options, region="ap-northeast-2", group_arn=group_arn
    )
    return alarms, body


def _dashboard(aws: dict[str, str]) -> dict[str, Any]:
    body = _cloudwatch(aws).get_dashboard(DashboardName=dashboard_name(ASG))["DashboardBody"]
    return dict(json.loads(body))


def test_every_alarm_and_the_dashboard_read_back_as_asked(aws: dict[str, str]) -> None:
    _install("--alarm-topic", TOPIC, "--alarm-wait", "900")

    asked, body = _asked(aws, alarm_topic=TOPIC, alarm_wait="900")
    installed = {a["AlarmName"]: a for a in _alarms(aws)}
    assert sorted(installed) == sorted([*asked, wake_alarm_name(ASG)])
    for name, params in asked.items():
        assert config_diff(desired=params, actual=installed[name]) == [], name
        assert installed[name]["AlarmActions"] == [TOPIC]
        assert installed[name]["OKActions"] == [TOPIC]
    names = alarm_names(ASG)
    silent = installed[names["publisher-silent"]]
    assert (silent["MetricName"], silent["Statistic"], silent["Dimensions"]) == (
        "BacklogCount",
        "SampleCount",
        _publisher_dimensions(),
    )
    assert (silent["EvaluationPeriods"], silent["TreatMissingData"]) == (3, "breaching")
    assert installed[names["wait-too-long"]]["Threshold"] == 900.0
    assert installed[names["work-lost"]]["MetricName"] == "RecoveredVideos"
    assert installed[names["work-lost"]]["Dimensions"] == _publisher_dimensions()
    assert _dashboard(aws) == body
    # The alarm ARNs on the dashboard are the ones CloudWatch gave the alarms.
    [alarm_widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(
        a["AlarmArn"] for a in installed.values()
    )


def test_alarm_wait_comes_from_the_acceptable_wait_else_the_default(aws: dict[str, str]) -> None:
    waits = []
    for flags in (
        (),
        ("--acceptable-wait", "300", "--processing-time", "60"),
        ("--acceptable-wait", "300", "--processing-time", "60", "--alarm-wait", "450"),
    ):
        result = _install(*flags)
        waits.append(result["alarm_wait_seconds"])

    assert waits == [600.0, 300.0, 450.0]
    [wait] = [a for a in _alarms(aws) if a["AlarmName"] == alarm_names(ASG)["wait-too-long"]]
    assert wait["Threshold"] == 450.0


def test_a_changed_acceptable_wait_updates_only_the_wait_alarm(
    aws: dict[str, str], recorded: list[Any]
) -> None:
    _install("--acceptable-wait", "600", "--processing-time", "120")
    recorded.clear()

    # Same target (900 / 180 = 600 / 120 = 5), longer wait.
    result = _install("--acceptable-wait", "900", "--processing-time", "180")

    changed = [item for item in result["items"] if item["action"] != "unchanged"]
    assert [(i["kind"], i["action"]) for i in changed] == [("wait-too-long-alarm", "updated")]
    assert [(c["path"], c["old"], c["new"]) for c in changed[0]["changes"]] == [
        (
            "AlarmDescription",
            "The oldest waiting video has waited over 600 s for 5 minutes. If "
            "academy-video-worker-asg is at its maximum, see the starved alarm; if it is "
            "scaling, give it its warmup; else check the workers take videos (worker logs, SQS "
            "queue). Installed by manage.py install_scaling_policy.",
            "The oldest waiting video has waited over 900 s for 5 minutes. If "
            "academy-video-worker-asg is at its maximum, see the starved alarm; if it is "
            "scaling, give it its warmup; else check the workers take videos (worker logs, SQS "
            "queue). Installed by manage.py install_scaling_policy.",
        ),
        ("Threshold", 600.0, 900.0),
    ]
    writes = [(op, p.get("AlarmName")) for _, op, p in recorded if not op.startswith(READS)]
    assert writes == [("PutMetricAlarm", alarm_names(ASG)["wait-too-long"])]


def test_leaving_out_the_topic_removes_the_actions_and_says_so(aws: dict[str, str]) -> None:
    _install("--alarm-topic", TOPIC)

    result = _install()

    changed = [item for item in result["items"] if item["action"] == "updated"]
    assert [item["kind"] for item in changed] == [f"{kind}-alarm" for kind in alarm_names(ASG)]
    for item in changed:
        assert item["changes"] == [
            {"path": "AlarmActions", "old": [TOPIC], "new": None},
            {"path": "OKActions", "old": [TOPIC], "new": None},
        ]
    assert all(a["AlarmActions"] == [] for a in _alarms(aws) if "-scaling-" in a["AlarmName"])


def test_uninstall_removes_the_alarms_and_dashboard_and_nothing_else(
    aws: dict[str, str],
) -> None:
    cloudwatch = _cloudwatch(aws)
    cloudwatch.put_metric_alarm(
        AlarmName=f"{ASG}-someone-elses-cpu",
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=90.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.put_dashboard(DashboardName="someone-elses", DashboardBody='{"widgets": []}')
    _install("--alarm-topic", TOPIC)

    result = _install("--uninstall")

    assert [a["AlarmName"] for a in _alarms(aws)] == [f"{ASG}-someone-elses-cpu"]
    entries = cloudwatch.list_dashboards()["DashboardEntries"]
    assert [d["DashboardName"] for d in entries] == ["someone-elses"]
    deletes = [r["params"] for r in result["requests"] if r["operation"].startswith("Delete")]
    assert deletes[:3] == [
        {"AlarmNames": [wake_alarm_name(ASG)]},
        {"AlarmNames": list(alarm_names(ASG).values())},
        {"DashboardNames": [dashboard_name(ASG)]},
    ]
    again = _install("--uninstall")
    # (metrics collection is "kept": moto cannot disable it, see the test above)
    assert {i["action"] for i in again["items"] if i["kind"] != "metrics-collection"} == {"absent"}


BAD_TOPICS = [
    "sns-topic",
    "arn:aws:sqs:ap-northeast-2:123456789012:academy-video-jobs",
    "arn:aws:sns:ap-northeast-2:1234:short-account",
    "arn:aws:sns:ap-northeast-2:123456789012:",
    "arn:aws:sns:ap-northeast-2:123456789012:has space",
]


@pytest.mark.parametrize("topic", BAD_TOPICS)
def test_a_bad_topic_arn_is_a_usage_error(
    aws: dict[str, str], recorded: list[Any], topic: str
) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("install_scaling_policy", "--alarm-topic", topic, stdout=StringIO())

    assert str(raised.value) == (
        "argument --alarm-topic: must be an SNS topic ARN "
        f"(arn:aws:sns:REGION:ACCOUNT_ID:NAME), got {topic!r}."
    )
    assert raised.value.returncode == 2
    assert recorded == []


def test_a_bad_topic_arn_from_the_shell_is_one_line_and_exit_2(aws: dict[str, str]) -> None:
    done = _manage(aws, "--alarm-topic", "arn:aws:sns:nowhere")

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "CommandError: argument --alarm-topic: must be an SNS topic ARN "
        "(arn:aws:sns:REGION:ACCOUNT_ID:NAME), got 'arn:aws:sns:nowhere'.\n"
    )


# Bad input --------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (["--target-value", "0"], "--target-value must be a finite number above 0, got '0'."),
    (["--target-value", "-2"], "--target-value must be a finite number above 0, got '-2'."),
    (["--target-value", "nan"], "--target-value must be a finite number above 0, got 'nan'."),
    (["--target-value", "inf"], "--target-value must be a finite number above 0, got 'inf'."),
    (["--target-value", "lots"], "--target-value must be a number, got 'lots'."),
    (
        ["--warmup", "3601"],
        "--warmup must be a whole number of seconds from 0 to 3600, got '3601'.",
    ),
    (["--warmup", "-1"], "--warmup must be a whole number of seconds from 0 to 3600, got '-1'."),
    (["--warmup", "1.5"], "--warmup must be a whole number of seconds from 0 to 3600, got '1.5'."),
    (["--mode", "sum"], "--mode must be 'per-instance' or 'total', got 'sum'."),
    (
        ["--acceptable-wait", "600"],
        "--acceptable-wait needs --processing-time (target = acceptable wait / processing time).",
    ),
    (
        ["--processing-time", "60"],
        "--processing-time needs --acceptable-wait (target = acceptable wait / processing time).",
    ),
    (
        ["--target-value", "3", "--acceptable-wait", "600", "--processing-time", "60"],
        "Give either --target-value or --acceptable-wait with --processing-time, not both.",
    ),
    (
        ["--acceptable-wait", "0", "--processing-time", "60"],
        "--acceptable-wait must be a finite number above 0, got '0'.",
    ),
    (
        ["--acceptable-wait", "600", "--processing-time", "0"],
        "--processing-time must be a finite number above 0, got '0'.",
    ),
    (
        ["--acceptable-wait", "1e-300", "--processing-time", "1e300"],
        "--acceptable-wait / --processing-time gives 0.0, which is not a finite number above 0.",
    ),
    (
        ["--mode", "total", "--acceptable-wait", "600", "--processing-time", "60"],
        "--acceptable-wait and --processing-time derive a per-instance target; "
        "--mode total takes --target-value.",
    ),
    (["--asg-name", ""], "--asg-name must be 1 to 255 characters."),
    (["--asg-name", "x" * 256], "--asg-name must be 1 to 255 characters."),
    (
        ["--asg-name", "no-such-asg"],
        "Auto Scaling group 'no-such-asg' does not exist in region ap-northeast-2.",
    ),
    (
        ["--uninstall", "--target-value", "3"],
        "--uninstall takes no --target-value: it removes what was installed.",
    ),
    (
        ["--uninstall", "--alarm-wait", "60"],
        "--uninstall takes no --alarm-wait: it removes what was installed.",
    ),
    (["--alarm-wait", "0"], "--alarm-wait must be a finite number above 0, got '0'."),
    (["--bogus"], "unrecognized arguments: --bogus."),
    (["--warmup"], "argument --warmup: expected one argument."),
]


@pytest.mark.parametrize(("argv", "message"), BAD_ARGUMENTS)
def test_bad_argument_gives_its_own_error_and_writes_nothing(
    aws: dict[str, str], recorded: list[Any], argv: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("install_scaling_policy", *argv, stdout=StringIO())

    assert str(raised.value) == message
    assert [op for _, op, _ in recorded if not op.startswith(READS)] == []
    assert _policies(aws) == {}


def test_every_bad_argument_has_a_message_of_its_own() -> None:
    messages = [message for _, message in BAD_ARGUMENTS]
    kinds = {m.replace(m[m.find("got ") :], "") if "got " in m else m for m in messages}
    assert len(kinds) >= 14


def _manage(aws: dict[str, str] | None, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(env)
    if aws is not None:
        environ.update(
            AWS_ENDPOINT_URL=aws["endpoint"],
            AWS_REGION=aws["region"],
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
    return subprocess.run(
        [sys.executable, "manage.py", "install_scaling_policy", *argv],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [BAD_ARGUMENTS[0], BAD_ARGUMENTS[5], BAD_ARGUMENTS[8], BAD_ARGUMENTS[18], BAD_ARGUMENTS[22]],
)
def test_bad_argument_from_the_shell_is_one_line_and_non_zero(
    aws: dict[str, str], argv: list[str], message: str
) -> None:
    done = _manage(aws, *argv)

    assert done.returncode != 0
    assert done.stderr == f"CommandError: {message}\n"
    assert done.stdout == ""


def test_missing_credentials_is_one_line_and_non_zero(aws: dict[str, str], tmp_path: Path) -> None:
    done = _manage(
        None,
        AWS_ENDPOINT_URL=aws["endpoint"],
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )

    assert done.returncode == 1
    assert done.stderr == (
        "CommandError: No AWS credentials found: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance role.\n"
    )
    assert _policies(aws) == {}


def test_unreachable_aws_is_one_line_and_non_zero() -> None:
    done = _manage(
        None,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )

    assert done.returncode == 1
    assert done.stderr == (
        "CommandError: AWS call DescribeAutoScalingGroups failed: Could not connect to the "
        'endpoint URL: "http://127.0.0.1:9/".\n'
    )


# The termination lifecycle hook ----------------------------------------------------------


def _hooks(aws: dict[str, str]) -> dict[str, dict[str, Any]]:
    found = _autoscaling(aws).describe_lifecycle_hooks(AutoScalingGroupName=ASG)["LifecycleHooks"]
    return {h["LifecycleHookName"]: h for h in found}


@pytest.mark.parametrize(
    ("lease", "flags", "timeout"),
    [
        (120, (), 240),  # the default lease: two leases
        (600, (), 1200),
        (10, (), 30),  # AWS's least
        (43_200, (), 7200),  # AWS's most
        (120, ("--drain-timeout", "900"), 900),
    ],
)
def test_hook_reads_back_as_asked(
    aws: dict[str, str], settings: Any, lease: int, flags: tuple[str, ...], timeout: int
) -> None:
    settings.VIDEO_LEASE_SECONDS = str(lease)

    result = _install(*flags)

    assert result["drain_timeout_seconds"] == timeout
    assert _actions(result)["lifecycle-hook"] == "created"
    hook = _hooks(aws)[LIFECYCLE_HOOK_NAME]
    asked = hook_request_build(asg_name=ASG, drain_timeout_seconds=timeout).params
    assert hook_installed(hook) == asked
    assert asked == {
        "LifecycleHookName": "academy-drain-on-terminate",
        "AutoScalingGroupName": ASG,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
        "HeartbeatTimeout": timeout,
        "DefaultResult": "CONTINUE",
    }


def test_hook_second_run_is_unchanged_and_writes_nothing(
    aws: dict[str, str], recorded: list[Any]
) -> None:
    _install("--drain-timeout", "300")
    recorded.clear()

    result = _install("--drain-timeout", "300")

    assert _actions(result)["lifecycle-hook"] == "unchanged"
    assert [op for _, op, _ in recorded if not op.startswith(READS)] == []
    assert [op for _, op, _ in recorded if op == "DescribeLifecycleHooks"] == [
        "DescribeLifecycleHooks"
    ]


def test_hook_changed_timeout_is_updated_and_shows_the_difference(
    aws: dict[str, str], recorded: list[Any]
) -> None:
    _install()
    recorded.clear()

    out = StringIO()
    call_command("install_scaling_policy", "--drain-timeout", "600", stdout=out)

    assert out.getvalue().splitlines()[-3:] == [
        f"lifecycle-hook {LIFECYCLE_HOOK_NAME}: updated",
        "  HeartbeatTimeout: 240 -> 600",
        "Done: 10 unchanged, 1 updated.",
    ]
    writes = [(op, p) for _, op, p in recorded if not op.startswith(READS)]
    assert writes == [
        (
            "PutLifecycleHook",
            hook_request_build(asg_name=ASG, drain_timeout_seconds=600).params,
        )
    ]
    assert _hooks(aws)[LIFECYCLE_HOOK_NAME]["HeartbeatTimeout"] == 600


def test_hook_dry_run_prints_the_request_and_writes_nothing(aws: dict[str, str]) -> None:
    _install()

    out = StringIO()
    call_command("install_scaling_policy", "--dry-run", "--drain-timeout", "45", stdout=out)

    text = out.getvalue()
    assert (
        f"lifecycle-hook {LIFECYCLE_HOOK_NAME}: would update\n  HeartbeatTimeout: 240 -> 45\n"
        in (text)
    )
    requests = json.loads(text.split("Requests that would be sent:\n", 1)[1].rsplit("\n", 2)[0])
    assert requests == [
        {
            "service": "autoscaling",
            "operation": "PutLifecycleHook",
            "params": hook_request_build(asg_name=ASG, drain_timeout_seconds=45).params,
        }
    ]
    assert _hooks(aws)[LIFECYCLE_HOOK_NAME]["HeartbeatTimeout"] == 240


def test_uninstall_removes_the_hook_and_no_other(aws: dict[str, str]) -> None:
    _autoscaling(aws).put_lifecycle_hook(
        LifecycleHookName="someone-elses-launch-hook",
        AutoScalingGroupName=ASG,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=60,
        DefaultResult="ABANDON",
    )
    _install()
    assert sorted(_hooks(aws)) == ["academy-drain-on-terminate", "someone-elses-launch-hook"]

    result = _install("--uninstall")

    assert _actions(result)["lifecycle-hook"] == "removed"
    deletes = [r for r in result["requests"] if r["operation"] == "DeleteLifecycleHook"]
    assert deletes == [
        {
            "service": "autoscaling",
            "operation": "DeleteLifecycleHook",
            "params": {"LifecycleHookName": LIFECYCLE_HOOK_NAME, "AutoScalingGroupName": ASG},
        }
    ]
    assert list(_hooks(aws)) == ["someone-elses-launch-hook"]
    assert _actions(_install("--uninstall"))["lifecycle-hook"] == "absent"


BAD_DRAIN_TIMEOUTS = ["29", "7201", "0", "-1", "1.5", "4m", "", "1e3"]


@pytest.mark.parametrize("raw", BAD_DRAIN_TIMEOUTS)
def test_a_bad_drain_timeout_is_a_usage_error(
    aws: dict[str, str], recorded: list[Any], raw: str
) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("install_scaling_policy", "--drain-timeout", raw, stdout=StringIO())

    assert str(raised.value) == (
        f"argument --drain-timeout: must be a whole number of seconds from 30 to 7200, got {raw!r}."
    )
    assert raised.value.returncode == 2
    assert recorded == []


def test_a_bad_drain_timeout_from_the_shell_is_one_line_and_exit_2(aws: dict[str, str]) -> None:
    done = _manage(aws, "--drain-timeout", "7201")

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "CommandError: argument --drain-timeout: must be a whole number of seconds from 30 to "
        "7200, got '7201'.\n"
    )


def test_uninstall_takes_no_drain_timeout(aws: dict[str, str]) -> None:
    with pytest.raises(CommandError) as raised:
        call_command(
            "install_scaling_policy", "--uninstall", "--drain-timeout", "60", stdout=StringIO()
        )

    assert str(raised.value) == (
        "--uninstall takes no --drain-timeout: it removes what was installed."
    )
