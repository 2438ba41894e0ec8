"""install_scaling_policy --check against a moto server: compares, names each difference,
writes nothing; finds a policy a CloudFormation stack named by its shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command

from devstack.localaws import local_aws_bootstrap
from scaling.aws import aws_call_observers
from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.fleets import fleet_get
from scaling.metric_spec import metric_spec_get
from scaling.policy.alarms import alarm_names
from scaling.policy.dashboard import FLEETS_DASHBOARD_NAME, dashboard_name
from scaling.policy.fleet_runs import OPTION_FLAGS, fleet_options
from scaling.policy.options import policy_options_parse
from scaling.policy.requests import (
    TARGET_POLICY_NAME,
    WAKE_POLICY_NAME,
    target_policy_request_build,
    wake_alarm_name,
    wake_alarm_request_build,
    wake_policy_request_build,
)
from tests.deploy.test_iam_documents import Call, calls_held_to_the_configured_fleets

# --check reads the fleet's active scale-in pause (scaling_pause) from the database.
pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
AI_ASG = "academy-ai-worker-asg"
REPO = Path(__file__).resolve().parents[2]
READS = ("Describe", "Get", "List")
# What a CloudFormation stack calls the two policies: "<stack>-<logical id>-<random>".
STACK_TARGET = "academy-scaling-TargetTrackingPolicy-1X2Y3Z4W5V6U"
STACK_WAKE = "academy-scaling-WakeFromZeroPolicy-7A8B9C0D1E2F"
METRICS = "metrics collection GroupInServiceInstances, GroupDesiredCapacity, GroupMaxSize (1Minute)"


@pytest.fixture
def calls() -> Iterator[list[tuple[str, str]]]:
    """Every AWS call the app makes (service, operation), from clients built after."""
    seen: list[tuple[str, str]] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        seen.append((service, operation))

    aws_call_observers.append(observe)
    yield seen
    aws_call_observers.remove(observe)


def _writes(seen: list[tuple[str, str]]) -> list[str]:
    return [op for _, op in seen if not op.startswith(READS)]


def _install(*args: str) -> None:
    call_command("install_scaling_policy", *args, stdout=StringIO())


def _check(*args: str) -> tuple[int, list[str], str]:
    """--check's exit status, its stdout lines and its one stderr line ("" on exit 0)."""
    out = StringIO()
    try:
        call_command("install_scaling_policy", "--check", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue().splitlines(), str(exc)
    return 0, out.getvalue().splitlines(), ""


def _check_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, lines, _ = _check("--json", *args)
    return code, dict(json.loads("\n".join(lines)))


def _autoscaling(aws: dict[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _cloudwatch(aws: dict[str, str]) -> Any:
    return boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _policy_put(aws: dict[str, str], *, asg: str = ASG, name: str, **flags: Any) -> str:
    """Our target tracking policy (with wake=True: the wake policy) put straight on moto
    under ``name``, built from the install flags ``flags``; returns its ARN."""
    wake = flags.pop("wake", False)
    asked: dict[str, Any] = {name: flags.get(name) for name in OPTION_FLAGS}
    if asg == AI_ASG:
        fleet = fleet_get("ai")
        parsed = fleet_options(fleet, asked)
        spec = metric_spec_get(conf=fleet.conf(), asg_name=asg)
    else:
        parsed = policy_options_parse(asg_name=asg, **asked)
        spec = metric_spec_get()
    request = (
        wake_policy_request_build(options=parsed)
        if wake
        else target_policy_request_build(spec=spec, options=parsed)
    )
    client = _autoscaling(aws)
    client.put_scaling_policy(**{**request.params, "PolicyName": name})
    found = client.describe_policies(AutoScalingGroupName=asg, PolicyNames=[name])
    return str(found["ScalingPolicies"][0]["PolicyARN"])


def _default_missing() -> list[str]:
    names = alarm_names(ASG)
    return [
        f"{METRICS}: missing",
        f"target tracking: missing (no policy {TARGET_POLICY_NAME}, nor one of its shape)",
        f"wake policy: missing (no policy {WAKE_POLICY_NAME}, nor one of its shape)",
        f"wake alarm {wake_alarm_name(ASG)}: missing",
        *(f"alarm {name}: missing" for name in names.values()),
        f"dashboard {dashboard_name(ASG)}: missing",
        f"lifecycle hook {LIFECYCLE_HOOK_NAME}: missing",
    ]


# One group ----------------------------------------------------------------------------


def test_after_an_install_check_is_equal_in_one_line_and_writes_nothing(
    aws: dict[str, str], calls: list[tuple[str, str]]
) -> None:
    _install()
    calls.clear()

    assert _check() == (
        0,
        [
            f"Equal: AWS holds what install_scaling_policy would install on {ASG} "
            "(11 things compared)."
        ],
        "",
    )
    assert calls  # it did read AWS
    assert _writes(calls) == []


def test_a_target_value_changed_on_aws_is_exit_1_and_named(
    aws: dict[str, str], calls: list[tuple[str, str]]
) -> None:
    _install()
    _policy_put(aws, name=TARGET_POLICY_NAME, target_value="5")
    calls.clear()

    code, lines, error = _check()

    assert code == 1
    assert lines == ["target tracking: TargetValue 5 installed, 3 asked"]
    assert error == (
        "Not equal: 1 difference between AWS and what install_scaling_policy would install "
        f"on {ASG}."
    )
    assert _writes(calls) == []
    policy = _autoscaling(aws).describe_policies(
        AutoScalingGroupName=ASG, PolicyNames=[TARGET_POLICY_NAME]
    )["ScalingPolicies"][0]
    assert policy["TargetTrackingConfiguration"]["TargetValue"] == 5.0  # left as it was


def test_a_deleted_alarm_is_missing(aws: dict[str, str], calls: list[tuple[str, str]]) -> None:
    _install()
    gone = alarm_names(ASG)["wait-too-long"]
    _cloudwatch(aws).delete_alarms(AlarmNames=[gone])
    calls.clear()

    code, lines, _ = _check()

    assert (code, lines) == (1, [f"alarm {gone}: missing"])
    assert _writes(calls) == []


def test_the_flags_say_what_is_asked(aws: dict[str, str]) -> None:
    _install("--target-value", "5")

    assert _check("--target-value", "5")[0] == 0
    code, lines, _ = _check()
    assert code == 1
    assert lines[0] == "target tracking: TargetValue 5 installed, 3 asked"
    # The starved alarm and the dashboard follow the target: named too, a line each.
    assert any(line.startswith(f"alarm {alarm_names(ASG)['starved']}: ") for line in lines)
    assert any(line.startswith(f"dashboard {dashboard_name(ASG)}: ") for line in lines)


def test_before_any_install_every_part_is_missing(
    aws: dict[str, str], calls: list[tuple[str, str]]
) -> None:
    code, lines, error = _check()

    assert code == 1
    assert lines == _default_missing()
    assert error.startswith("Not equal: 11 differences ")
    assert _writes(calls) == []


def test_json_gives_equal_and_the_differences(aws: dict[str, str]) -> None:
    code, data = _check_json()
    assert code == 1
    assert data["equal"] is False
    assert [d["line"] for d in data["differences"]] == _default_missing()
    assert {d["status"] for d in data["differences"]} == {"missing"}

    _install()
    _policy_put(aws, name=TARGET_POLICY_NAME, target_value="5")
    code, data = _check_json()
    assert code == 1
    assert data["differences"] == [
        {
            "kind": "target-tracking-policy",
            "name": TARGET_POLICY_NAME,
            "status": "differs",
            "line": "target tracking: TargetValue 5 installed, 3 asked",
            "fleet": None,
            "path": "TargetTrackingConfiguration.TargetValue",
            "installed": 5.0,
            "asked": 3.0,
        }
    ]

    _install()
    code, data = _check_json()
    assert (code, data["equal"], data["differences"], data["asg_name"]) == (0, True, [], ASG)


@pytest.mark.parametrize("flag", ["--uninstall", "--dry-run"])
def test_check_with_a_writing_flag_is_a_usage_error(
    aws: dict[str, str], calls: list[tuple[str, str]], flag: str
) -> None:
    code, lines, error = _check(flag)

    assert (code, lines) == (2, [])
    assert error == f"--check takes no {flag}: it compares and writes nothing."
    assert calls == []


def test_usage_error_from_the_shell_is_one_line_and_exit_2() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "manage.py", "install_scaling_policy", "--check", "--dry-run"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "CommandError: --check takes no --dry-run: it compares and writes nothing.\n"
    )


def test_a_missing_group_is_one_line_and_exit_1(aws: dict[str, str]) -> None:
    code, lines, error = _check("--asg-name", "no-such-asg")

    assert (code, lines) == (1, [])
    assert error == "Auto Scaling group 'no-such-asg' does not exist in region ap-northeast-2."


# Policies a CloudFormation stack named ---------------------------------------------------


def _as_a_stack_would_name_them(aws: dict[str, str], **target: Any) -> None:
    """Our two policies replaced by the same ones under CloudFormation's names, and the
    wake alarm pointed at the new wake policy (as the stack's Ref would)."""
    client = _autoscaling(aws)
    for name in (TARGET_POLICY_NAME, WAKE_POLICY_NAME):
        client.delete_policy(AutoScalingGroupName=ASG, PolicyName=name)
    _policy_put(aws, name=STACK_TARGET, **target)
    wake_arn = _policy_put(aws, name=STACK_WAKE, wake=True)
    none: dict[str, Any] = dict.fromkeys(OPTION_FLAGS)
    options = policy_options_parse(asg_name=ASG, **none)
    alarm = wake_alarm_request_build(
        spec=metric_spec_get(), options=options, wake_policy_arn=wake_arn
    )
    _cloudwatch(aws).put_metric_alarm(**alarm.params)


def test_policies_named_by_a_stack_are_found_by_their_shape(
    aws: dict[str, str], calls: list[tuple[str, str]]
) -> None:
    _install()
    _as_a_stack_would_name_them(aws)
    calls.clear()

    code, lines, _ = _check()

    assert code == 0
    assert lines == [
        f"target tracking: compared policy {STACK_TARGET} (no policy {TARGET_POLICY_NAME}; "
        "it tracks Academy/VideoProcessing BacklogCount)",
        f"wake policy: compared policy {STACK_WAKE} (no policy {WAKE_POLICY_NAME}; "
        f"alarm {wake_alarm_name(ASG)} calls it)",
        f"Equal: AWS holds what install_scaling_policy would install on {ASG} "
        "(11 things compared).",
    ]
    assert _writes(calls) == []


def test_a_stack_named_policy_that_differs_is_named(aws: dict[str, str]) -> None:
    _install()
    _as_a_stack_would_name_them(aws, target_value="5")

    code, data = _check_json()

    assert code == 1
    assert [d["line"] for d in data["differences"]] == [
        "target tracking: TargetValue 5 installed, 3 asked"
    ]
    assert data["notes"][0].startswith(f"target tracking: compared policy {STACK_TARGET} ")


def test_a_policy_on_another_metric_does_not_stand_in(aws: dict[str, str]) -> None:
    _install()
    client = _autoscaling(aws)
    client.delete_policy(AutoScalingGroupName=ASG, PolicyName=TARGET_POLICY_NAME)
    client.put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName="someone-elses-cpu-policy",
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration={
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
            "TargetValue": 50.0,
        },
    )

    code, lines, _ = _check()

    assert code == 1
    assert lines == [
        f"target tracking: missing (no policy {TARGET_POLICY_NAME}, nor one of its shape)"
    ]


def test_two_policies_of_our_shape_are_a_difference(aws: dict[str, str]) -> None:
    _install()
    _autoscaling(aws).delete_policy(AutoScalingGroupName=ASG, PolicyName=TARGET_POLICY_NAME)
    _policy_put(aws, name=STACK_TARGET)
    _policy_put(aws, name=f"{STACK_TARGET}-copy")

    code, lines, _ = _check()

    assert code == 1
    assert lines[-1] == (
        f"target tracking: 2 policies of its shape ({STACK_TARGET}, {STACK_TARGET}-copy), "
        "one expected"
    )


# Fleets -------------------------------------------------------------------------------


@pytest.fixture
def two_fleets(aws: dict[str, str], settings: Any) -> Iterator[list[Call]]:
    """Both groups on moto, SCALING_FLEETS naming them; the calls held to the IAM
    documents rendered for the two fleets."""
    ai = local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="ai-jobs")
    settings.SCALING_FLEETS = [
        {"name": "video", "asg_name": ASG, "source": "port"},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": ai["queue_url"],
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
        },
    ]
    with calls_held_to_the_configured_fleets() as held:
        yield held


def _fleet_writes(held: list[Call]) -> list[str]:
    return [op for _, _, op, _, _ in held if not op.startswith(READS)]


def test_check_fleet_ai_on_its_own_group(aws: dict[str, str], two_fleets: list[Call]) -> None:
    assert _check("--fleet", "ai")[0] == 1  # nothing installed yet
    _install("--fleet", "ai")
    two_fleets.clear()

    assert _check("--fleet", "ai") == (
        0,
        [
            f"Equal: AWS holds what install_scaling_policy would install on {AI_ASG} "
            "(10 things compared)."
        ],  # no lifecycle hook: the ai fleet holds no leases
        "",
    )
    _policy_put(aws, asg=AI_ASG, name=TARGET_POLICY_NAME, target_value="7")
    code, data = _check_json("--fleet", "ai")

    assert code == 1
    [fleet] = data["fleets"]
    assert (fleet["fleet"], fleet["asg_name"], fleet["equal"]) == ("ai", AI_ASG, False)
    assert [d["line"] for d in data["differences"]] == [
        "fleet ai: target tracking: TargetValue 7 installed, 3 asked"
    ]
    assert _fleet_writes(two_fleets) == []


def test_check_all_is_per_fleet(aws: dict[str, str], two_fleets: list[Call]) -> None:
    _install("--all")
    two_fleets.clear()

    code, data = _check_json("--all")
    assert (code, data["equal"]) == (0, True)
    assert [(f["fleet"], f["equal"]) for f in data["fleets"]] == [("video", True), ("ai", True)]

    _cloudwatch(aws).delete_dashboards(DashboardNames=[FLEETS_DASHBOARD_NAME])
    _cloudwatch(aws).delete_alarms(AlarmNames=[alarm_names(AI_ASG)["starved"]])
    code, lines, error = _check("--all")

    assert code == 1
    assert lines == [
        f"fleet ai: alarm {alarm_names(AI_ASG)['starved']}: missing",
        f"dashboard {FLEETS_DASHBOARD_NAME}: missing",
    ]
    assert error == (
        "Not equal: 2 differences between AWS and what install_scaling_policy would "
        f"install on {ASG}, {AI_ASG}."
    )
    assert _fleet_writes(two_fleets) == []


def test_check_fleet_unknown_is_a_usage_error(two_fleets: list[Call]) -> None:
    code, _, error = _check("--fleet", "nope")

    assert (code, error) == (2, "Unknown fleet 'nope': configured fleets are video, ai.")


# A stack made from the export ------------------------------------------------------------

MOTO_ACCOUNT = "123456789012"


def _resolved(value: Any, refs: dict[str, str]) -> Any:
    """The template's Ref and Fn::Sub, as CloudFormation resolves them."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return refs[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        text = str(value["Fn::Sub"])
        for name, resolved in refs.items():
            text = text.replace("${" + name + "}", resolved)
        return text.replace("${!", "${")
    if isinstance(value, dict):
        return {key: _resolved(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, refs) for item in value]
    return value


def _stack_deploy(aws: dict[str, str], stack: str = "academy-scaling") -> None:
    """export_scaling_stack's CloudFormation template made on moto as CloudFormation
    would: each resource through its API, the policies under names of the stack's
    making (PolicyName is read-only in AWS::AutoScaling::ScalingPolicy's schema), the
    wake policy before the alarm that Refs it; the group collects its metrics itself."""
    out = StringIO()
    call_command("export_scaling_stack", "--format", "cloudformation", stdout=out)
    template = json.loads(out.getvalue())
    refs = {
        "AutoScalingGroupName": ASG,
        "AWS::Region": aws["region"],
        "AWS::AccountId": MOTO_ACCOUNT,
        "AWS::Partition": "aws",
    }
    autoscaling, cloudwatch = _autoscaling(aws), _cloudwatch(aws)
    autoscaling.enable_metrics_collection(
        AutoScalingGroupName=ASG,
        Metrics=["GroupInServiceInstances", "GroupDesiredCapacity", "GroupMaxSize"],
        Granularity="1Minute",
    )
    resources = template["Resources"]
    policies_first = sorted(resources, key=lambda r: "Policy" not in resources[r]["Type"])
    for index, logical_id in enumerate(policies_first):
        kind = resources[logical_id]["Type"]
        properties = _resolved(resources[logical_id]["Properties"], refs)
        if kind == "AWS::AutoScaling::ScalingPolicy":
            name = f"{stack}-{logical_id}-{index:04d}RANDOM"
            properties["PolicyName"] = name
            autoscaling.put_scaling_policy(**properties)
            found = autoscaling.describe_policies(AutoScalingGroupName=ASG, PolicyNames=[name])
            refs[logical_id] = found["ScalingPolicies"][0]["PolicyARN"]
        elif kind == "AWS::CloudWatch::Alarm":
            cloudwatch.put_metric_alarm(**properties)
        elif kind == "AWS::CloudWatch::Dashboard":
            cloudwatch.put_dashboard(**properties)
        else:
            assert kind == "AWS::AutoScaling::LifecycleHook"
            autoscaling.put_lifecycle_hook(**properties)


def test_a_stack_made_from_the_export_checks_equal_then_names_a_change(
    aws: dict[str, str], calls: list[tuple[str, str]]
) -> None:
    _stack_deploy(aws)
    calls.clear()

    code, lines, _ = _check()

    assert code == 0, lines
    assert [line.split(" (")[0] for line in lines[:2]] == [
        "target tracking: compared policy academy-scaling-TargetTrackingPolicy-0000RANDOM",
        "wake policy: compared policy academy-scaling-WakePolicy-0001RANDOM",
    ]
    assert lines[2].startswith("Equal: ")
    assert _writes(calls) == []

    policy = _autoscaling(aws).describe_policies(
        AutoScalingGroupName=ASG, PolicyNames=["academy-scaling-TargetTrackingPolicy-0000RANDOM"]
    )["ScalingPolicies"][0]
    _autoscaling(aws).put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName=policy["PolicyName"],
        PolicyType="TargetTrackingScaling",
        EstimatedInstanceWarmup=policy["EstimatedInstanceWarmup"],
        TargetTrackingConfiguration={**policy["TargetTrackingConfiguration"], "TargetValue": 6.0},
    )
    code, lines, _ = _check()

    assert code == 1
    assert lines[2:] == ["target tracking: TargetValue 6 installed, 3 asked"]
