"""A fleet's policy.warm_pool and policy.predictive (SCALING_FLEETS) installed by
install_scaling_policy --all / --fleet on a moto server holding both groups, compared by
--check --all, overridden by the command line's flags; every AWS call held to the IAM
documents rendered for the two fleets."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command

from devstack.localaws import local_aws_bootstrap
from scaling.export.run import export_build
from scaling.models import MetricPublication
from scaling.policy.options import PolicyError
from scaling.policy.requests import PREDICTIVE_POLICY_NAME
from tests.deploy.test_iam_documents import Call, calls_held_to_the_configured_fleets

pytestmark = pytest.mark.django_db

VIDEO_ASG = "academy-video-worker-asg"
AI_ASG = "academy-ai-worker-asg"
READS = ("Describe", "Get", "List")
POOL = {"min_size": 1, "max_prepared": 4, "state": "Stopped", "reuse": False}


def _fleets(queue_url: str, **ai_policy: Any) -> list[dict[str, Any]]:
    return [
        {"name": "video", "asg_name": VIDEO_ASG, "source": "port"},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": queue_url,
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
            "policy": {"target_value": 5, **ai_policy},
        },
    ]


@pytest.fixture
def queue_url(aws: dict[str, str]) -> str:
    return str(
        local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="ai-jobs")["queue_url"]
    )


@pytest.fixture
def calls(queue_url: str) -> Iterator[list[Call]]:
    with calls_held_to_the_configured_fleets() as found:
        yield found


def _writes(calls: list[Call]) -> list[tuple[str, dict[str, Any]]]:
    return [(op, params) for _, _, op, params, _ in calls if not op.startswith(READS)]


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _check(*args: str) -> tuple[dict[str, Any], CommandError | None]:
    out = StringIO()
    try:
        call_command("install_scaling_policy", "--check", *args, "--json", stdout=out)
    except CommandError as exc:
        return dict(json.loads(out.getvalue())), exc
    return dict(json.loads(out.getvalue())), None


def _autoscaling(aws: Mapping[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _pool(aws: Mapping[str, str], asg: str) -> dict[str, Any] | None:
    found = _autoscaling(aws).describe_warm_pool(AutoScalingGroupName=asg)
    return found.get("WarmPoolConfiguration")


def _predictive(aws: Mapping[str, str], asg: str) -> dict[str, Any] | None:
    found = _autoscaling(aws).describe_policies(
        AutoScalingGroupName=asg, PolicyNames=[PREDICTIVE_POLICY_NAME]
    )["ScalingPolicies"]
    return dict(found[0]) if found else None


def _actions(result: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        run["fleet"]: {item["kind"]: item["action"] for item in run["items"]}
        for run in result["fleets"]
    }


def _published_day(fleet: str, asg: str) -> None:
    """26 published audit rows an hour apart: the 24 hours --predictive needs."""
    newest = datetime.now(UTC).replace(second=0, microsecond=0)
    for hours in range(26):
        MetricPublication.objects.create(
            fleet=fleet,
            slot_start=newest - timedelta(hours=hours),
            interval_seconds=60,
            value=4,
            source="sqs",
            status="published",
            duration_ms=1.0,
            asg_name=asg,
        )


def test_all_installs_the_pool_on_the_fleet_that_asks_only_and_a_second_run_is_unchanged(
    aws: dict[str, str], settings: Any, queue_url: str, calls: list[Call]
) -> None:
    settings.SCALING_FLEETS = _fleets(queue_url, warm_pool=POOL)

    first = _install("--all")

    assert first["errors"] == {}
    assert _actions(first)["ai"]["warm-pool"] == "created"
    assert "warm-pool" not in _actions(first)["video"]
    assert _pool(aws, VIDEO_ASG) is None
    pool = _pool(aws, AI_ASG)
    assert pool is not None
    assert (pool["MinSize"], pool["MaxGroupPreparedCapacity"], pool["PoolState"]) == (
        1,
        4,
        "Stopped",
    )
    assert pool["InstanceReusePolicy"] == {"ReuseOnScaleIn": False}
    [put] = [params for op, params in _writes(calls) if op == "PutWarmPool"]
    assert put["AutoScalingGroupName"] == AI_ASG
    calls.clear()

    second = _install("--all")

    assert {kind: action for kind, action in _actions(second)["ai"].items()} == {
        kind: "unchanged" for kind in _actions(second)["ai"]
    }
    assert set(_actions(second)["video"].values()) == {"unchanged"}
    assert _writes(calls) == []
    checked, failed = _check("--all")
    assert failed is None
    assert checked["equal"] is True
    assert {"kind": "warm-pool", "name": AI_ASG} in checked["fleets"][1]["compared"]


def test_check_all_reports_the_pool_the_fleet_asks_for_until_it_is_installed(
    aws: dict[str, str], settings: Any, queue_url: str, calls: list[Call]
) -> None:
    settings.SCALING_FLEETS = _fleets(queue_url)
    _install("--all")
    settings.SCALING_FLEETS = _fleets(queue_url, warm_pool=POOL)

    checked, failed = _check("--all")

    assert failed is not None
    assert [(d["fleet"], d["kind"], d["status"]) for d in checked["differences"]] == [
        ("ai", "warm-pool", "missing")
    ]
    settings.SCALING_FLEETS = _fleets(queue_url, warm_pool={**POOL, "min_size": 2})
    _install("--all")
    settings.SCALING_FLEETS = _fleets(queue_url, warm_pool=POOL)

    checked, failed = _check("--all")

    assert failed is not None
    [difference] = checked["differences"]
    assert (difference["fleet"], difference["kind"], difference["status"]) == (
        "ai",
        "warm-pool",
        "differs",
    )
    assert (difference["installed"], difference["asked"]) == (2, 1)


def test_a_flag_on_the_command_line_wins_over_the_fleets_value(
    aws: dict[str, str], settings: Any, queue_url: str, calls: list[Call]
) -> None:
    settings.SCALING_FLEETS = _fleets(queue_url, warm_pool=POOL)

    _install("--fleet", "ai", "--warm-pool-min-size", "3", "--warm-pool-state", "Running")

    pool = _pool(aws, AI_ASG)
    assert pool is not None
    assert (pool["MinSize"], pool["MaxGroupPreparedCapacity"], pool["PoolState"]) == (
        3,
        4,
        "Running",
    )
    result = _install("--fleet", "ai", "--no-warm-pool")
    assert _actions(result)["ai"]["warm-pool"] == "removed"
    assert _pool(aws, AI_ASG) is None


def test_the_fleets_predictive_policy_is_installed_on_its_group_only(
    aws: dict[str, str], settings: Any, queue_url: str, calls: list[Call]
) -> None:
    predictive = {"mode": "forecast-only", "buffer": 600}
    settings.SCALING_FLEETS = _fleets(queue_url, predictive=predictive)
    _published_day("ai", AI_ASG)

    first = _install("--all")

    assert first["errors"] == {}
    assert _actions(first)["ai"]["predictive-policy"] == "created"
    assert _predictive(aws, VIDEO_ASG) is None
    policy = _predictive(aws, AI_ASG)
    assert policy is not None
    config = policy["PredictiveScalingConfiguration"]
    assert (config["Mode"], config["SchedulingBufferTime"]) == ("ForecastOnly", 600)
    assert config["MetricSpecifications"][0]["TargetValue"] == 5.0
    calls.clear()

    second = _install("--all")

    assert _actions(second)["ai"]["predictive-policy"] == "unchanged"
    assert _writes(calls) == []
    checked, failed = _check("--all")
    assert (failed, checked["equal"]) == (None, True)


def test_a_fleets_predictive_policy_without_a_day_of_history_fails_that_fleet_only(
    aws: dict[str, str], settings: Any, queue_url: str, calls: list[Call]
) -> None:
    settings.SCALING_FLEETS = _fleets(queue_url, predictive={"mode": "forecast-only"})

    with pytest.raises(CommandError) as raised:
        _install("--all")

    assert "Fleet ai failed: --predictive needs 24 hours of published values" in str(raised.value)
    assert _autoscaling(aws).describe_policies(AutoScalingGroupName=VIDEO_ASG)["ScalingPolicies"]


def test_a_flag_that_clashes_with_the_fleets_value_names_the_fleets_key(
    aws: dict[str, str], settings: Any, queue_url: str
) -> None:
    settings.SCALING_FLEETS = _fleets(queue_url, predictive={"mode": "forecast-only"})

    with pytest.raises(CommandError) as raised:
        call_command(
            "install_scaling_policy", "--fleet", "ai", "--mode", "total", stdout=StringIO()
        )

    assert str(raised.value) == (
        "Fleet ai (with its policy.predictive): --predictive scales on backlog per "
        "in-service instance: it takes --mode per-instance, not --mode total."
    )
    assert raised.value.returncode == 1


def test_terraform_export_of_a_fleet_with_a_pool_names_the_fleets_key(
    settings: Any,
) -> None:
    queue = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/ai-jobs"
    settings.SCALING_FLEETS = _fleets(queue, warm_pool=POOL)

    with pytest.raises(PolicyError) as caught:
        export_build({"format": "terraform", "fleet": "ai"})

    assert str(caught.value).startswith("Fleet ai's policy.warm_pool has no Terraform resource")
    export = export_build({"format": "terraform", "fleet": "ai", "no_warm_pool": True})
    assert "aws_autoscaling_policy" in export.document["resource"]
    cfn = export_build({"format": "cloudformation", "fleet": "ai"})
    assert cfn.document["Resources"]["WarmPool"]["Properties"]["MinSize"] == 1
