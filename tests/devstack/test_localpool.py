"""The local warm pool (devstack.localpool) on moto's server, and the warm-boot tag.

moto stores the pool ``install_scaling_policy --warm-pool`` puts and never holds an
instance in it; the control plane plays it with the simulator's PoolLedger and tags
the instances a scale-out takes from it, so ``devstack.localgroup`` boots them in
the warm boot. The group is the suite's: MinSize 0, MaxSize 10, desired 0.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from devstack import controlplane
from devstack.controlplane import ControlPlane
from devstack.fleet import LocalFleet
from devstack.localaws import local_client
from devstack.localgroup import (
    BOOT_SECONDS_MAX,
    WARM_BOOT_TAG,
    LocalGroup,
    LocalInstance,
    group_read,
    warm_boot_read,
)
from devstack.localpool import (
    LocalPool,
    WarmBootSecondsError,
    warm_boot_seconds_get,
    warm_pool_spec,
)
from scaling.simulation.tracking import TrackingRules
from scaling.simulation.warm_pool import WarmPoolSpec
from tests.devstack.test_controlplane import ASG, INTERVAL, Local, install, lines, run_slots
from tests.devstack.test_fleet import Clock, FakeSpawner

pytestmark = pytest.mark.django_db

BOOT = 120  # DEVSTACK_BOOT_SECONDS
WARM = 5  # DEVSTACK_WARM_BOOT_SECONDS
# Through the control plane: slot k is evaluated 30 to 90 s + k periods after moto's
# LaunchTime (the wall clock), so a cold boot must outlast two periods to tell apart.
PLANE_BOOT = 300
RULES = TrackingRules(mode="per-instance", target=3.0, min_size=0, max_size=10)


@pytest.fixture
def local(aws: dict[str, str]) -> Local:
    def client(service: str) -> Any:
        return local_client(service, aws["endpoint"], aws["region"])

    return Local(
        autoscaling=client("autoscaling"),
        cloudwatch=client("cloudwatch"),
        ec2=client("ec2"),
        base=time.time() // INTERVAL * INTERVAL + INTERVAL,
    )


def pool_of(local: Local, *, now: float) -> LocalPool:
    pool = LocalPool(
        autoscaling=local.autoscaling,
        ec2=local.ec2,
        asg_name=ASG,
        boot_seconds=BOOT,
        warm_boot_seconds=WARM,
    )
    pool.read(rules=RULES, desired=local.group()["DesiredCapacity"], now=now)
    return pool


def group(local: Local) -> LocalGroup:
    return group_read(local.autoscaling, local.ec2, ASG)


def scale(local: Local, pool: LocalPool, desired: int, *, now: float) -> int:
    """One capacity change and its period's refill, as ControlPlane.step does them."""
    taken = pool.capacity_set(group(local), desired, now=now)
    pool.refill(desired=desired, now=now)
    return taken


def tags(local: Local) -> dict[str, str]:
    """Instance id -> its warm-boot tag value, for every instance that has one."""
    reply = local.ec2.describe_instances()
    return {
        i["InstanceId"]: tag["Value"]
        for r in reply["Reservations"]
        for i in r["Instances"]
        for tag in i.get("Tags", [])
        if tag["Key"] == WARM_BOOT_TAG
    }


# --- a scale-out from the pool, from an empty pool, without a pool ---------------------


def test_a_scale_out_from_a_full_pool_boots_warm(local: Local) -> None:
    install("--target-value", "3", "--warm-pool")  # MaxGroupPreparedCapacity unset: MaxSize
    now = time.time()
    pool = pool_of(local, now=now)
    assert pool.size == 10  # MaxSize 10 - desired 0, full at the start
    assert scale(local, pool, 3, now=now) == 3
    instances = group(local).instances
    assert len(instances) == 3
    assert tags(local) == {i.instance_id: "5" for i in instances}
    for instance in instances:
        assert instance.warm_boot_seconds == WARM
        assert instance.booted_at(BOOT) == instance.launched_at + WARM
        assert not instance.booted(instance.launched_at + WARM - 0.5, BOOT)
        assert instance.booted(instance.launched_at + WARM, BOOT)
    assert pool.size == 7  # pool target for desired 3: 10 - 3, nothing to refill


def test_an_empty_pool_lets_the_instances_boot_cold(local: Local) -> None:
    install("--target-value", "3", "--warm-pool", "--warm-pool-max-prepared", "0")
    now = time.time()
    pool = pool_of(local, now=now)
    assert pool.size == 0  # max prepared 0 = desired 0
    assert scale(local, pool, 3, now=now) == 0
    assert tags(local) == {}
    for instance in group(local).instances:
        assert instance.warm_boot_seconds is None
        assert not instance.booted(instance.launched_at + WARM, BOOT)
        assert instance.booted(instance.launched_at + BOOT, BOOT)


def test_without_a_pool_nothing_is_tagged(local: Local) -> None:
    install("--target-value", "3")
    now = time.time()
    pool = pool_of(local, now=now)
    assert (pool.ledger, pool.size) == (None, 0)
    assert scale(local, pool, 3, now=now) == 0
    assert local.group()["DesiredCapacity"] == 3
    assert tags(local) == {}
    assert [i.warm_boot_seconds for i in group(local).instances] == [None, None, None]


def test_a_second_scale_out_right_after_finds_what_the_pool_target_left(local: Local) -> None:
    # Prepared capacity 4: the pool holds 4 at desired 0 and 1 at desired 3.
    install("--target-value", "3", "--warm-pool", "--warm-pool-max-prepared", "4")
    now = time.time()
    pool = pool_of(local, now=now)
    assert pool.size == 4
    assert scale(local, pool, 3, now=now) == 3
    assert pool.size == 1
    assert scale(local, pool, 6, now=now + INTERVAL) == 1  # 1 warm, 2 cold
    assert sorted(tags(local).values()) == ["5"] * 4
    assert sum(i.warm_boot_seconds is None for i in group(local).instances) == 2


def test_the_refill_boots_cold_before_the_pool_serves_again(local: Local) -> None:
    # MinSize 3, prepared 3: the pool is refilled to 3 at once, each ready after a cold boot.
    install(
        "--target-value", "3", "--warm-pool",
        "--warm-pool-min-size", "3", "--warm-pool-max-prepared", "3",
    )  # fmt: skip
    now = time.time()
    pool = pool_of(local, now=now)
    assert scale(local, pool, 3, now=now) == 3
    assert pool.size == 3  # refilled, initialising until now + BOOT
    assert scale(local, pool, 6, now=now + INTERVAL) == 0  # right after: all cold
    assert scale(local, pool, 9, now=now + BOOT) == 3  # the refill has booted
    assert len(tags(local)) == 6


@pytest.mark.parametrize(("reuse", "after_scale_in"), [("on", 10), ("off", 7)])
def test_scale_in_returns_instances_to_the_pool_with_reuse(
    local: Local, reuse: str, after_scale_in: int
) -> None:
    install("--target-value", "3", "--warm-pool", "--warm-pool-reuse", reuse)
    now = time.time()
    pool = pool_of(local, now=now)
    scale(local, pool, 3, now=now)
    assert pool.capacity_set(group(local), 0, now=now + INTERVAL) == 0
    assert local.group()["Instances"] == []  # moto terminates them all the same
    assert pool.size == after_scale_in
    assert pool.refill(desired=0, now=now + INTERVAL) == 10  # off: 3 launched into the pool


def test_the_fleet_starts_the_worker_of_a_warm_instance_after_the_warm_boot(
    local: Local,
) -> None:
    install("--target-value", "3", "--warm-pool", "--warm-pool-max-prepared", "1")
    now = time.time()
    pool = pool_of(local, now=now)
    assert scale(local, pool, 2, now=now) == 1  # one warm, one cold
    (warm,) = tags(local)
    spawner, clock = FakeSpawner(), Clock()
    fleet = LocalFleet(
        local.autoscaling, local.ec2, asg_name=ASG, spawner=spawner, boot_seconds=BOOT, clock=clock
    )
    launched = max(i.launched_at for i in group(local).instances)
    clock.now = launched + WARM - 1
    fleet.step()
    assert spawner.spawned == {}
    clock.now = launched + WARM
    fleet.step()
    assert list(spawner.spawned) == [warm]
    clock.now = launched + BOOT
    fleet.step()
    assert len(spawner.spawned) == 2


# --- played by the control plane ------------------------------------------------------


def test_the_control_plane_counts_a_warm_instance_in_service_after_the_warm_boot(
    local: Local, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    install("--target-value", "3", "--warmup", "0", "--warm-pool")
    timeline = tmp_path / "timeline.jsonl"
    plane = ControlPlane(
        autoscaling=local.autoscaling,
        cloudwatch=local.cloudwatch,
        ec2=local.ec2,
        asg_name=ASG,
        interval_seconds=INTERVAL,
        boot_seconds=PLANE_BOOT,
        warm_boot_seconds=WARM,
        timeline=timeline,
    )
    (wake,) = run_slots(local, plane, {0: 12})
    assert (wake.reason, wake.set_to, wake.pool) == ("wake", 1, 9)
    assert len(tags(local)) == 1
    # One period later (well within the 300 s cold boot) the warm instance serves.
    (after,) = run_slots(local, plane, {1: 12})
    assert (after.in_service, after.warm, after.live) == (1, 1, 1)
    assert [json.loads(line)["pool"] for line in timeline.read_text().splitlines()] == [9, 9]
    assert lines(caplog, "from the warm pool") == [
        f"control plane: 1 new instance(s) of {ASG}: 1 from the warm pool (boot 5 s), "
        "0 cold (boot 300 s); 9 left in the pool"
    ]
    # A restarted control plane starts with a full pool, as the model does.
    restarted = ControlPlane(
        autoscaling=local.autoscaling,
        cloudwatch=local.cloudwatch,
        ec2=local.ec2,
        asg_name=ASG,
        interval_seconds=INTERVAL,
        boot_seconds=PLANE_BOOT,
        warm_boot_seconds=WARM,
    )
    (again,) = run_slots(local, restarted, {2: 12})
    assert again.pool == 9
    assert len(lines(caplog, "played locally: 10 instance(s) ready")) == 1
    assert len(lines(caplog, "played locally: 9 instance(s) ready")) == 1


def test_without_a_pool_a_cold_instance_is_not_in_service_one_period_later(
    local: Local,
) -> None:
    install("--target-value", "3", "--warmup", "0")
    plane = local.plane(boot_seconds=PLANE_BOOT, warm_boot_seconds=WARM)
    (wake,) = run_slots(local, plane, {0: 12})
    assert (wake.set_to, wake.pool) == (1, 0)
    (after,) = run_slots(local, plane, {1: 12})
    assert (after.in_service, after.live) == (0, 1)


def test_a_removed_pool_is_no_longer_played(local: Local) -> None:
    install("--target-value", "3", "--warm-pool")
    now = time.time()
    pool = pool_of(local, now=now)
    assert pool.size == 10
    install("--target-value", "3", "--no-warm-pool")
    pool.read(rules=RULES, desired=0, now=now)
    assert pool.size == 0
    assert scale(local, pool, 2, now=now) == 0
    assert tags(local) == {}


# --- settings and the configuration ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "boot", "expected"),
    [
        (None, 10, 5),  # make run's default boot: half of it
        (None, 120, 30),  # the simulator's 30 s
        (None, 0, 0),
        (" ", 10, 5),
        ("0", 10, 0),
        (" 7 ", 10, 7),
        ("10", 10, 10),
    ],
)
def test_the_warm_boot_is_read_from_the_environment(
    raw: str | None, boot: int, expected: int
) -> None:
    environ = {} if raw is None else {"DEVSTACK_WARM_BOOT_SECONDS": raw}
    assert warm_boot_seconds_get(environ, boot_seconds=boot) == expected


@pytest.mark.parametrize("raw", ["11", "-1", "1.5", "5s", "five", "²"])
def test_a_bad_warm_boot_is_refused_in_one_sentence(raw: str) -> None:
    with pytest.raises(WarmBootSecondsError) as caught:
        warm_boot_seconds_get({"DEVSTACK_WARM_BOOT_SECONDS": raw}, boot_seconds=10)
    assert str(caught.value) == (
        "DEVSTACK_WARM_BOOT_SECONDS must be a whole number of seconds from 0 to "
        f"DEVSTACK_BOOT_SECONDS (10), got {raw!r}: unset it for 5"
    )


def test_main_refuses_a_bad_warm_boot(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("django.setup", lambda: None)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:5000"
    monkeypatch.setenv("DEVSTACK_BOOT_SECONDS", "10")
    monkeypatch.setenv("DEVSTACK_WARM_BOOT_SECONDS", "60")
    assert controlplane.main() == 2
    assert lines(caplog, "DEVSTACK_WARM_BOOT_SECONDS must be a whole number")


def test_the_configuration_becomes_the_simulators_spec() -> None:
    config = {
        "MinSize": 2,
        "MaxGroupPreparedCapacity": -1,  # AWS's way of "unset"
        "PoolState": "Running",
        "InstanceReusePolicy": {"ReuseOnScaleIn": True},
        "Status": "Active",
    }
    assert warm_pool_spec(config, warm_boot_seconds=WARM) == WarmPoolSpec(
        min_size=2, max_prepared=None, state="Running", reuse_on_scale_in=True, warm_boot_seconds=5
    )
    # DescribeWarmPool leaves AWS's defaults out.
    assert warm_pool_spec({"MaxGroupPreparedCapacity": 4}, warm_boot_seconds=0) == WarmPoolSpec(
        max_prepared=4, state="Stopped", reuse_on_scale_in=False, warm_boot_seconds=0
    )


# --- localgroup: the tag --------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ([], None),
        ([{"Key": "Name", "Value": "5"}], None),
        ([{"Key": WARM_BOOT_TAG, "Value": "5"}], 5),
        ([{"Key": "Name", "Value": "x"}, {"Key": WARM_BOOT_TAG, "Value": " 0 "}], 0),
        ([{"Key": WARM_BOOT_TAG, "Value": str(BOOT_SECONDS_MAX)}], BOOT_SECONDS_MAX),
        ([{"Key": WARM_BOOT_TAG, "Value": str(BOOT_SECONDS_MAX + 1)}], None),
        ([{"Key": WARM_BOOT_TAG, "Value": "soon"}], None),
        ([{"Key": WARM_BOOT_TAG, "Value": "-5"}], None),
        ([{"Key": WARM_BOOT_TAG, "Value": "²"}], None),
        ([{"Key": WARM_BOOT_TAG}], None),
    ],
)
def test_the_warm_boot_tag_is_read(found: list[dict[str, str]], expected: int | None) -> None:
    assert warm_boot_read(found) == expected


def test_a_tagged_instance_boots_in_its_warm_boot_an_untagged_one_cold() -> None:
    cold = LocalInstance(instance_id="i-1", state="InService", protected=False, launched_at=100.0)
    warm = LocalInstance(
        instance_id="i-2", state="InService", protected=False, launched_at=100.0,
        warm_boot_seconds=5,
    )  # fmt: skip
    assert (cold.booted_at(BOOT), warm.booted_at(BOOT)) == (220.0, 105.0)
    assert [cold.booted(105.0, BOOT), warm.booted(105.0, BOOT)] == [False, True]
    assert not LocalInstance("i-3", "Pending", False, 100.0, 5).booted(200.0, BOOT)
