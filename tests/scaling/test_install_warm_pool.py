"""install_scaling_policy --warm-pool: on the moto server, and on a Stubber for the exact
requests and the answers moto does not give (Status, MaxGroupPreparedCapacity -1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import CommandError, call_command

from scaling.aws import aws_call_observers
from scaling.policy.capacity_options import WarmPoolOptions
from scaling.policy.install import _send
from scaling.policy.options import PolicyError
from scaling.policy.warm_pool import (
    WARM_POOL_TAG_KEY,
    warm_pool_describe,
    warm_pool_plan,
    warm_pool_removal,
)

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
READS = ("Describe", "Get")


def _autoscaling(aws: dict[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _pool(aws: dict[str, str]) -> dict[str, Any] | None:
    answer = _autoscaling(aws).describe_warm_pool(AutoScalingGroupName=ASG)
    return answer.get("WarmPoolConfiguration")


def _tags(aws: dict[str, str]) -> dict[str, str]:
    group = _autoscaling(aws).describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    return {t["Key"]: t["Value"] for t in group["AutoScalingGroups"][0].get("Tags", [])}


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _pool_item(result: dict[str, Any]) -> dict[str, Any]:
    [item] = [i for i in result["items"] if i["kind"] == "warm-pool"]
    return item


@pytest.fixture
def writes() -> Iterator[list[str]]:
    """The operations of every write request that reached the endpoint."""
    calls: list[str] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        if not operation.startswith(READS):
            calls.append(operation)

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)


def test_warm_pool_installs_reads_back_and_a_second_run_writes_nothing(
    aws: dict[str, str], writes: list[str]
) -> None:
    flags = ("--warm-pool", "--warm-pool-min-size", "1", "--warm-pool-state", "Hibernated")
    first = _install(*flags)

    assert _pool_item(first) == {
        "kind": "warm-pool",
        "name": ASG,
        "action": "created",
        "changes": [],
        "note": "",
    }
    assert first["warm_pool"] == {
        "min_size": 1,
        "max_prepared": None,
        "state": "Hibernated",
        "reuse_on_scale_in": True,
    }
    assert _pool(aws) == {
        "MinSize": 1,
        "PoolState": "Hibernated",
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }
    assert _tags(aws)[WARM_POOL_TAG_KEY] == "installed by install_scaling_policy"
    writes.clear()

    again = _install(*flags)

    assert {i["action"] for i in again["items"]} == {"unchanged"}
    assert again["requests"] == []
    assert writes == []


def test_one_value_changed_is_updated_with_its_field_named(aws: dict[str, str]) -> None:
    _install("--warm-pool", "--warm-pool-max-prepared", "4")

    result = _install("--warm-pool", "--warm-pool-max-prepared", "4", "--warm-pool-reuse", "off")

    item = _pool_item(result)
    assert item["action"] == "updated"
    assert item["changes"] == [
        {"path": "InstanceReusePolicy.ReuseOnScaleIn", "old": True, "new": False}
    ]
    assert _pool(aws) == {
        "MaxGroupPreparedCapacity": 4,
        "MinSize": 0,
        "PoolState": "Stopped",
        "InstanceReusePolicy": {"ReuseOnScaleIn": False},
    }


def test_a_plain_install_keeps_the_pool_and_no_warm_pool_removes_it(aws: dict[str, str]) -> None:
    _install("--warm-pool")

    plain = _install()

    assert _pool_item(plain)["action"] == "kept"
    assert _pool_item(plain)["note"] == "--no-warm-pool removes it"
    assert _pool(aws) is not None

    removed = _install("--no-warm-pool")

    assert _pool_item(removed)["action"] == "removed"
    assert _pool_item(removed)["note"] == "AWS terminates the pool's instances"
    assert [r["params"] for r in removed["requests"] if r["operation"] == "DeleteWarmPool"] == [
        {"AutoScalingGroupName": ASG, "ForceDelete": False}
    ]
    assert _pool(aws) is None
    assert WARM_POOL_TAG_KEY not in _tags(aws)


def test_uninstall_removes_our_pool(aws: dict[str, str]) -> None:
    _install("--warm-pool", "--warm-pool-state", "Running")

    result = _install("--uninstall")

    assert _pool_item(result)["action"] == "removed"
    assert _pool(aws) is None
    assert WARM_POOL_TAG_KEY not in _tags(aws)


def test_a_pool_without_our_tag_is_kept_by_uninstall_and_by_no_warm_pool(
    aws: dict[str, str],
) -> None:
    _autoscaling(aws).put_warm_pool(AutoScalingGroupName=ASG, MinSize=2)
    _install()

    uninstalled = _install("--uninstall")
    asked_off = _install("--no-warm-pool")

    for result in (uninstalled, asked_off):
        assert _pool_item(result)["action"] == "kept"
        assert _pool_item(result)["note"] == "not installed by this command"
        assert not [r for r in result["requests"] if r["operation"] == "DeleteWarmPool"]
    assert _pool(aws) == {"MinSize": 2, "PoolState": "Stopped"}


def test_dry_run_sends_nothing(aws: dict[str, str], writes: list[str]) -> None:
    result = _install("--dry-run", "--warm-pool", "--warm-pool-min-size", "2")

    assert _pool_item(result)["action"] == "created"
    puts = [r for r in result["requests"] if r["operation"] == "PutWarmPool"]
    assert puts == [
        {
            "service": "autoscaling",
            "operation": "PutWarmPool",
            "params": {
                "AutoScalingGroupName": ASG,
                "MinSize": 2,
                "PoolState": "Stopped",
                "InstanceReusePolicy": {"ReuseOnScaleIn": True},
            },
        }
    ]
    assert writes == []
    assert _pool(aws) is None


def test_check_reports_a_missing_pool_and_then_equal(aws: dict[str, str]) -> None:
    _install()
    with pytest.raises(CommandError, match="1 difference"):
        call_command("install_scaling_policy", "--check", "--warm-pool", stdout=StringIO())
    _install("--warm-pool")

    out = StringIO()
    call_command("install_scaling_policy", "--check", "--warm-pool", stdout=out)

    assert "Equal:" in out.getvalue()


# Bad flags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (
            ("--warm-pool-min-size", "1"),
            "--warm-pool-min-size needs --warm-pool (it shapes the pool --warm-pool installs).",
        ),
        (("--warm-pool", "--no-warm-pool"), "Give --warm-pool or --no-warm-pool, not both."),
        (
            ("--warm-pool", "--warm-pool-min-size", "-1"),
            "--warm-pool-min-size must be a whole number from 0 to 10000, got '-1'.",
        ),
        (
            ("--warm-pool", "--warm-pool-state", "Frozen"),
            "--warm-pool-state must be Stopped, Running or Hibernated, got 'Frozen'.",
        ),
        (
            ("--warm-pool", "--warm-pool-reuse", "yes"),
            "--warm-pool-reuse must be on or off, got 'yes'.",
        ),
        (
            ("--warm-pool", "--warm-pool-min-size", "3", "--warm-pool-max-prepared", "2"),
            "--warm-pool-min-size 3 is above --warm-pool-max-prepared 2: the pool's minimum "
            "must fit in the prepared capacity.",
        ),
        (
            ("--uninstall", "--warm-pool"),
            "--uninstall takes no --warm-pool: it removes what was installed.",
        ),
    ],
)
def test_bad_warm_pool_flags_get_one_sentence_and_exit_1(
    aws: dict[str, str], args: tuple[str, ...], sentence: str
) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("install_scaling_policy", *args, stdout=StringIO())

    assert str(caught.value) == sentence
    assert caught.value.returncode == 1
    assert _pool(aws) is None


# Stubber: the exact requests, and answers moto never gives ----------------------------


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "autoscaling",
        region_name="ap-northeast-2",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    stub = Stubber(client)
    stub.activate()
    return client, stub


TAGGED = {"Tags": [{"Key": WARM_POOL_TAG_KEY, "Value": "installed by install_scaling_policy"}]}


def test_hibernated_pool_as_aws_describes_it_reads_as_unchanged() -> None:
    """AWS answers MaxGroupPreparedCapacity -1 for "unset" and carries no Status while the
    pool is in use; moto leaves both out."""
    client, stub = _stubbed()
    stub.add_response(
        "describe_warm_pool",
        {
            "WarmPoolConfiguration": {
                "MaxGroupPreparedCapacity": -1,
                "MinSize": 1,
                "PoolState": "Hibernated",
                "InstanceReusePolicy": {"ReuseOnScaleIn": True},
            },
            "Instances": [],
        },
        {"AutoScalingGroupName": ASG},
    )
    held = warm_pool_describe(client, ASG)
    stub.assert_no_pending_responses()

    item, requests = warm_pool_plan(
        asg_name=ASG,
        group=TAGGED,
        held=held,
        pool=WarmPoolOptions(min_size=1, state="Hibernated"),
        off=False,
    )

    assert item is not None
    assert (item.action, item.changes, requests) == ("unchanged", [], [])


def test_an_unset_maximum_clears_the_held_one_with_minus_one() -> None:
    client, stub = _stubbed()
    held = {
        "MaxGroupPreparedCapacity": 5,
        "MinSize": 0,
        "PoolState": "Stopped",
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
    }
    item, [request] = warm_pool_plan(
        asg_name=ASG, group=TAGGED, held=held, pool=WarmPoolOptions(), off=False
    )
    assert item is not None
    assert [c.line() for c in item.changes] == ["MaxGroupPreparedCapacity: 5 -> (absent)"]
    stub.add_response(
        "put_warm_pool",
        {},
        {
            "AutoScalingGroupName": ASG,
            "MinSize": 0,
            "PoolState": "Stopped",
            "InstanceReusePolicy": {"ReuseOnScaleIn": True},
            "MaxGroupPreparedCapacity": -1,
        },
    )

    _send(client, request)

    stub.assert_no_pending_responses()


def test_removal_sends_delete_without_force_then_the_tag() -> None:
    client, stub = _stubbed()
    held = {"MinSize": 0, "PoolState": "Stopped"}
    item, requests = warm_pool_removal(asg_name=ASG, group=TAGGED, held=held, asked=False)
    stub.add_response("delete_warm_pool", {}, {"AutoScalingGroupName": ASG, "ForceDelete": False})
    stub.add_response(
        "delete_tags",
        {},
        {
            "Tags": [
                {"ResourceId": ASG, "ResourceType": "auto-scaling-group", "Key": WARM_POOL_TAG_KEY}
            ]
        },
    )

    for request in requests:
        _send(client, request)

    stub.assert_no_pending_responses()
    assert item is not None
    assert item.action == "removed"


def test_a_pool_being_deleted_is_not_put_again() -> None:
    with pytest.raises(PolicyError, match=r"is being deleted \(PendingDelete\): run again"):
        warm_pool_plan(
            asg_name=ASG,
            group=TAGGED,
            held={"MinSize": 0, "Status": "PendingDelete"},
            pool=WarmPoolOptions(),
            off=False,
        )
