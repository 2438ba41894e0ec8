"""install_scaling_policy --fleet NAME / --all against a moto server holding both groups.

Every AWS call here is held to the IAM documents rendered for the two fleets
(``manage.py scaling_iam_policy``), not to deploy/iam/, which is for the video
fleet alone (tests/deploy/test_iam_documents.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command

from devstack.localaws import local_aws_bootstrap
from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.fleets import fleet_get
from scaling.metric_spec import metric_spec_get
from scaling.policy.dashboard import (
    FLEETS_DASHBOARD_NAME,
    dashboard_body_build,
    dashboard_name,
)
from scaling.policy.options import policy_options_parse
from scaling.policy.requests import TARGET_POLICY_NAME, WAKE_POLICY_NAME
from tests.deploy.test_iam_documents import (
    Call,
    calls_held_to_the_configured_fleets,
    iam_violations,
)

# The installer reads the fleet's scale-in pause (scaling_pause) from the database.
pytestmark = pytest.mark.django_db

VIDEO_ASG = "academy-video-worker-asg"
AI_ASG = "academy-ai-worker-asg"
REPO = Path(__file__).resolve().parents[2]
READS = ("Describe", "Get")
UNKNOWN = "Unknown fleet 'nope': configured fleets are video, ai."


def _fleets(queue_url: str, **ai: Any) -> list[dict[str, Any]]:
    return [
        {"name": "video", "asg_name": VIDEO_ASG, "source": "port"},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": queue_url,
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
            **ai,
        },
    ]


@pytest.fixture
def two_fleets(aws: dict[str, str], settings: Any) -> Iterator[list[Call]]:
    """Both groups on moto, SCALING_FLEETS naming them; yields the AWS calls made."""
    ai = local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="ai-jobs")
    settings.SCALING_FLEETS = _fleets(ai["queue_url"])
    with calls_held_to_the_configured_fleets() as calls:
        yield calls


def _writes(calls: list[Call]) -> list[tuple[str, dict[str, Any]]]:
    return [(op, params) for _, _, op, params, _ in calls if not op.startswith(READS)]


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _autoscaling(aws: Mapping[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _cloudwatch(aws: Mapping[str, str]) -> Any:
    return boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _policies(aws: Mapping[str, str], asg: str) -> dict[str, dict[str, Any]]:
    found = _autoscaling(aws).describe_policies(AutoScalingGroupName=asg)["ScalingPolicies"]
    return {p["PolicyName"]: p for p in found}


def _hooks(aws: Mapping[str, str], asg: str) -> list[str]:
    hooks = _autoscaling(aws).describe_lifecycle_hooks(AutoScalingGroupName=asg)
    return [h["LifecycleHookName"] for h in hooks["LifecycleHooks"]]


def _dashboards(aws: Mapping[str, str]) -> set[str]:
    entries = _cloudwatch(aws).list_dashboards()["DashboardEntries"]
    return {e["DashboardName"] for e in entries}


def _tracked_metric(policy: Mapping[str, Any]) -> dict[str, Any]:
    metrics = policy["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    return dict(metrics[0]["MetricStat"]["Metric"])


def _actions(run: Mapping[str, Any]) -> dict[str, str]:
    return {item["kind"]: item["action"] for item in run["items"]}


# One fleet ---------------------------------------------------------------------------


def test_fleet_ai_installs_on_its_group_with_its_metric_and_no_hook(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    result = _install("--fleet", "ai")

    [run] = result["fleets"]
    assert (run["fleet"], run["asg_name"]) == ("ai", AI_ASG)
    assert "lifecycle-hook" not in _actions(run)
    assert run["warnings"] == [
        "Lifecycle hook not installed: fleet ai's workers hold no leases (source sqs), so "
        "there is nothing to drain."
    ]
    policy = _policies(aws, AI_ASG)[TARGET_POLICY_NAME]
    metric = _tracked_metric(policy)
    assert (metric["Namespace"], metric["MetricName"]) == ("Academy/Workers", "BacklogCount")
    assert metric["Dimensions"] == [
        {"Name": "WorkerType", "Value": "AI"},
        {"Name": "AutoScalingGroupName", "Value": AI_ASG},
    ]
    assert _hooks(aws, AI_ASG) == []
    assert _policies(aws, VIDEO_ASG) == {}  # the other fleet's group is not touched
    assert _dashboards(aws) == {dashboard_name(AI_ASG)}


def test_the_policy_tracks_exactly_the_published_dimensions(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    _install("--all")

    for name, asg in (("video", VIDEO_ASG), ("ai", AI_ASG)):
        published = metric_spec_get(conf=fleet_get(name).conf()).dimensions_api()
        policy = _policies(aws, asg)[TARGET_POLICY_NAME]
        assert _tracked_metric(policy)["Dimensions"] == published, name


def test_the_fleets_policy_defaults_apply_where_no_flag_says(
    aws: dict[str, str], settings: Any, two_fleets: list[Call]
) -> None:
    policy = {"acceptable_wait": 600, "processing_time": 120, "warmup": 30}
    settings.SCALING_FLEETS = _fleets(settings.SCALING_FLEETS[1]["queue_url"], policy=policy)

    [run] = _install("--fleet", "ai")["fleets"]
    installed = _policies(aws, AI_ASG)[TARGET_POLICY_NAME]
    assert (run["target_value"], run["warmup_seconds"], run["alarm_wait_seconds"]) == (5, 30, 600)
    assert run["target_derivation"].endswith("(fleet ai's policy)")
    assert installed["TargetTrackingConfiguration"]["TargetValue"] == 5.0
    assert installed["EstimatedInstanceWarmup"] == 30

    [run] = _install("--fleet", "ai", "--target-value", "2", "--warmup", "90")["fleets"]
    assert (run["target_value"], run["warmup_seconds"]) == (2, 90)
    assert run["target_derivation"] == "target 2 from --target-value"


# Every fleet -------------------------------------------------------------------------


def test_all_installs_both_and_a_second_run_changes_nothing(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    first = _install("--all")

    assert [run["fleet"] for run in first["fleets"]] == ["video", "ai"]
    assert first["dashboard"]["name"] == FLEETS_DASHBOARD_NAME
    assert first["dashboard"]["action"] == "created"
    assert first["errors"] == {}
    video, ai = first["fleets"]
    assert _actions(video)["lifecycle-hook"] == "created"
    assert "dashboard" not in _actions(video)  # one dashboard for every fleet
    assert "lifecycle-hook" not in _actions(ai)
    assert (
        set(_policies(aws, VIDEO_ASG))
        == set(_policies(aws, AI_ASG))
        == {
            TARGET_POLICY_NAME,
            WAKE_POLICY_NAME,
        }
    )
    assert _hooks(aws, VIDEO_ASG) == [LIFECYCLE_HOOK_NAME]
    assert _hooks(aws, AI_ASG) == []
    assert _dashboards(aws) == {FLEETS_DASHBOARD_NAME}

    # deploy/iam/ (the video fleet alone) would refuse exactly the second fleet's writes.
    refused = iam_violations(two_fleets, successful_only=True)
    assert refused
    assert all(AI_ASG in p or FLEETS_DASHBOARD_NAME in p for p in refused), refused

    two_fleets.clear()
    second = _install("--all")

    assert _writes(two_fleets) == []
    assert second["dashboard"]["action"] == "unchanged"
    for run in second["fleets"]:
        assert set(_actions(run).values()) == {"unchanged"}, run["fleet"]
        assert run["requests"] == []


def test_the_fleets_dashboard_has_a_row_per_fleet_on_its_own_metric(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    _install("--all")

    body = json.loads(
        _cloudwatch(aws).get_dashboard(DashboardName=FLEETS_DASHBOARD_NAME)["DashboardBody"]
    )
    headings = [w for w in body["widgets"] if w["type"] == "text"]
    assert [h["properties"]["markdown"].split(":")[0] for h in headings] == [
        "## Fleet video",
        "## Fleet ai",
    ]
    assert headings[1]["y"] > max(w["y"] for w in body["widgets"][1:8])  # below video's row
    ai_widgets = [w for w in body["widgets"] if w["properties"].get("title", "").startswith("ai: ")]
    assert len(ai_widgets) == 7
    published = ai_widgets[0]["properties"]["metrics"][0]
    assert published[:6] == [
        "Academy/Workers",
        "BacklogCount",
        "WorkerType",
        "AI",
        "AutoScalingGroupName",
        AI_ASG,
    ]


def test_all_with_one_fleet_draws_todays_dashboard(aws: dict[str, str]) -> None:
    result = _install("--all")

    [run] = result["fleets"]
    assert result["dashboard"] is None
    assert _actions(run)["dashboard"] == "created"
    body = json.loads(
        _cloudwatch(aws).get_dashboard(DashboardName=dashboard_name(VIDEO_ASG))["DashboardBody"]
    )
    group = _autoscaling(aws).describe_auto_scaling_groups(AutoScalingGroupNames=[VIDEO_ASG])
    options = policy_options_parse(
        asg_name=None,
        mode=None,
        target_value=None,
        acceptable_wait=None,
        processing_time=None,
        warmup=None,
    )
    assert body == dashboard_body_build(
        spec=metric_spec_get(),
        options=options,
        region=aws["region"],
        group_arn=group["AutoScalingGroups"][0]["AutoScalingGroupARN"],
    )


def test_dry_run_all_sends_nothing_and_shows_every_fleets_requests(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    result = _install("--all", "--dry-run")

    assert _writes(two_fleets) == []
    groups = {
        r["params"]["AutoScalingGroupName"]
        for run in result["fleets"]
        for r in run["requests"]
        if r["operation"] == "PutScalingPolicy"
    }
    assert groups == {VIDEO_ASG, AI_ASG}
    assert [r["operation"] for r in result["dashboard_requests"]] == ["PutDashboard"]
    assert _policies(aws, AI_ASG) == {}
    assert _dashboards(aws) == set()


# Uninstall ---------------------------------------------------------------------------


def test_uninstall_fleet_ai_leaves_video_as_it_was(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    _install("--all")

    [run] = _install("--uninstall", "--fleet", "ai")["fleets"]

    assert run["uninstall"] is True
    assert _actions(run)["target-tracking-policy"] == "removed"
    assert _policies(aws, AI_ASG) == {}
    assert set(_policies(aws, VIDEO_ASG)) == {TARGET_POLICY_NAME, WAKE_POLICY_NAME}
    assert _hooks(aws, VIDEO_ASG) == [LIFECYCLE_HOOK_NAME]
    assert FLEETS_DASHBOARD_NAME in _dashboards(aws)  # video's row is still wanted


def test_uninstall_all_removes_every_fleet_and_the_dashboard(
    aws: dict[str, str], two_fleets: list[Call]
) -> None:
    _install("--all")

    result = _install("--uninstall", "--all")

    assert result["dashboard"]["action"] == "removed"
    assert _policies(aws, AI_ASG) == _policies(aws, VIDEO_ASG) == {}
    assert _hooks(aws, VIDEO_ASG) == []
    assert _dashboards(aws) == set()


# Usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fleet", "nope"], UNKNOWN),
        (["--fleet", "nope", "--uninstall"], UNKNOWN),
        (["--fleet", "ai", "--all"], "Give --fleet NAME or --all, not both."),
        (
            ["--all", "--asg-name", VIDEO_ASG],
            "--all takes no --asg-name: each fleet's group is its asg_name (SCALING_FLEETS).",
        ),
        (
            ["--fleet", "ai", "--asg-name", AI_ASG],
            "--fleet takes no --asg-name: each fleet's group is its asg_name (SCALING_FLEETS).",
        ),
    ],
)
def test_a_usage_error_is_one_sentence_exit_2_and_writes_nothing(
    two_fleets: list[Call], argv: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("install_scaling_policy", *argv, stdout=StringIO())

    assert (str(raised.value), raised.value.returncode) == (message, 2)
    assert two_fleets == []


def test_unknown_fleet_from_the_shell_is_one_line_and_exit_2(aws: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(
        AWS_ENDPOINT_URL=aws["endpoint"],
        AWS_REGION=aws["region"],
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        SCALING_FLEETS=json.dumps(_fleets(aws["queue_url"])),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "install_scaling_policy", "--fleet", "nope"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"CommandError: {UNKNOWN}\n"


def test_a_fleet_that_fails_does_not_stop_the_others(
    aws: dict[str, str], settings: Any, two_fleets: list[Call]
) -> None:
    fleets = _fleets(settings.SCALING_FLEETS[1]["queue_url"])
    fleets[1]["asg_name"] = "no-such-asg"
    settings.SCALING_FLEETS = fleets
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("install_scaling_policy", "--all", "--json", stdout=out)

    assert str(raised.value) == (
        "Fleet ai failed: Auto Scaling group 'no-such-asg' does not exist in region ap-northeast-2."
    )
    result = json.loads(out.getvalue())
    assert [run["fleet"] for run in result["fleets"]] == ["video", "ai"]
    assert result["dashboard"] is None
    assert set(_policies(aws, VIDEO_ASG)) == {TARGET_POLICY_NAME, WAKE_POLICY_NAME}
    assert _dashboards(aws) == set()
