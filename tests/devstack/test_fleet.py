"""`make run`'s local fleet (devstack.fleet) on moto's server.

The group is moto's; the desired capacity is set here directly (the control
plane's business, tests/devstack/test_controlplane.py); the workers are fakes
(no process is started). An instance is booted ``boot_seconds`` after its EC2
LaunchTime, which moto stamps with the wall clock.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.fleet import LocalFleet, queue_refill, run
from devstack.localaws import local_client, port_free_get
from tests.factories import video_create, video_leased
from video.models import VideoStatus

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"


@dataclass
class FakeWorker:
    pid: int
    stubborn: bool = False  # ignores SIGTERM
    code: int | None = None
    signals: list[str] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.signals.append("TERM")
        if not self.stubborn:
            self.code = -15

    def kill(self) -> None:
        self.signals.append("KILL")
        self.code = -9

    def wait(self, timeout: float | None = None) -> int:
        if self.code is None:
            assert timeout is not None, "a wait without timeout on a live worker never returns"
            raise subprocess.TimeoutExpired("video_worker", timeout)
        return self.code


@dataclass
class FakeSpawner:
    spawned: dict[str, list[FakeWorker]] = field(default_factory=dict)
    fail: bool = False
    stubborn: bool = False

    def __call__(self, instance_id: str) -> FakeWorker:
        if self.fail:
            raise OSError("no such file")
        count = sum(len(w) for w in self.spawned.values())
        worker = FakeWorker(pid=1000 + count, stubborn=self.stubborn)
        self.spawned.setdefault(instance_id, []).append(worker)
        return worker

    def signals(self) -> dict[str, list[str]]:
        return {i: [s for w in ws for s in w.signals] for i, ws in self.spawned.items()}


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Local:
    autoscaling: Any
    ec2: Any
    region: str

    def fleet(self, spawner: FakeSpawner, **kwargs: Any) -> LocalFleet:
        kwargs.setdefault("boot_seconds", 0)
        return LocalFleet(self.autoscaling, self.ec2, asg_name=ASG, spawner=spawner, **kwargs)

    def desired_set(self, n: int) -> None:
        self.autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=n)

    def in_service(self) -> list[str]:
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
        return sorted(
            i["InstanceId"]
            for i in groups["AutoScalingGroups"][0]["Instances"]
            if i["LifecycleState"] == "InService"
        )


@pytest.fixture
def local(aws: dict[str, str]) -> Local:
    return Local(
        autoscaling=local_client("autoscaling", aws["endpoint"], aws["region"]),
        ec2=local_client("ec2", aws["endpoint"], aws["region"]),
        region=aws["region"],
    )


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_one_worker_per_in_service_instance(local: Local, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = local.fleet(spawner)
    fleet.step()
    assert spawner.spawned == {}
    local.desired_set(3)
    fleet.step()
    fleet.step()
    assert sorted(spawner.spawned) == local.in_service()
    assert all(len(workers) == 1 for workers in spawner.spawned.values())
    assert len(lines(caplog, " booted: worker pid ")) == 3


def test_a_worker_starts_only_once_its_instance_has_booted(local: Local) -> None:
    spawner, clock = FakeSpawner(), Clock()
    fleet = local.fleet(spawner, boot_seconds=10, clock=clock)
    local.desired_set(2)
    clock.now = time.time()  # launched: LaunchTime <= now < LaunchTime + 10
    fleet.step()
    assert spawner.spawned == {}
    clock.now += 11
    fleet.step()
    assert sorted(spawner.spawned) == local.in_service()


def test_the_worker_of_an_instance_that_left_gets_sigterm(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = local.fleet(spawner)
    local.desired_set(3)
    fleet.step()
    local.desired_set(1)
    fleet.step()
    (kept,) = local.in_service()
    assert list(fleet.workers) == [kept]
    assert spawner.signals() == {i: [] if i == kept else ["TERM"] for i in spawner.spawned}
    assert len(lines(caplog, " terminated: worker pid ")) == 2
    assert sorted(fleet.stopping) == sorted(set(spawner.spawned) - {kept})
    fleet.step()  # both exited on SIGTERM: reaped, nothing to kill
    assert fleet.stopping == {}
    assert spawner.signals() == {i: [] if i == kept else ["TERM"] for i in spawner.spawned}


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner, clock = FakeSpawner(stubborn=True), Clock()
    fleet = local.fleet(spawner, stop_grace=6, clock=clock)
    local.desired_set(1)
    clock.now = time.time()
    fleet.step()
    (gone,) = spawner.spawned
    local.desired_set(0)
    fleet.step()
    assert list(fleet.stopping) == [gone]
    clock.now += 5
    fleet.step()  # within the grace: not killed, and the step did not wait for it
    assert spawner.signals() == {gone: ["TERM"]}
    clock.now += 1
    fleet.step()
    assert spawner.signals() == {gone: ["TERM", "KILL"]}
    assert fleet.stopping == {}
    assert lines(caplog, f"instance {gone}: worker pid 1000 killed (no exit after SIGTERM)")


def test_aws_unreachable_stops_no_worker_and_is_one_line(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = local.fleet(spawner)
    local.desired_set(2)
    fleet.step()
    dead = f"http://127.0.0.1:{port_free_get()}"
    fleet.autoscaling = local_client("autoscaling", dead, local.region)
    fleet.ec2 = local_client("ec2", dead, local.region)
    for _ in range(3):
        fleet.step()
    assert len(fleet.workers) == 2
    assert all(signals == [] for signals in spawner.signals().values())
    assert len(lines(caplog, "local fleet: cannot read the group")) == 1


def test_a_worker_that_exits_is_restarted_after_a_pause(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner, clock = FakeSpawner(), Clock()
    fleet = local.fleet(spawner, restart_after=10, clock=clock)
    local.desired_set(1)
    clock.now = time.time()
    fleet.step()
    (instance_id,) = spawner.spawned
    spawner.spawned[instance_id][0].code = 1  # crashed, or drained and exited
    fleet.step()
    clock.now += 5
    fleet.step()
    assert len(spawner.spawned[instance_id]) == 1
    clock.now += 6
    fleet.step()
    assert len(spawner.spawned[instance_id]) == 2
    assert lines(caplog, "exited with code 1; restarted in 10 s")


def test_a_worker_that_cannot_start_is_one_line(
    local: Local, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    fleet = local.fleet(FakeSpawner(fail=True))
    local.desired_set(1)
    for _ in range(3):
        fleet.step()
    assert fleet.workers == {}
    assert len(lines(caplog, ": no worker (OSError")) == 1


def test_stop_asks_every_worker_to_stop_and_kills_what_stays(local: Local) -> None:
    spawner = FakeSpawner()
    fleet = local.fleet(spawner)
    local.desired_set(2)
    fleet.step()
    stubborn = FakeWorker(pid=99, stubborn=True)
    fleet.stopping["i-leaving"] = (stubborn, time.time() + 60)  # its instance left earlier
    fleet.stop(grace=0.1)
    assert fleet.workers == {}
    assert fleet.stopping == {}
    assert sorted(spawner.signals().values()) == [["TERM"], ["TERM"]]
    assert stubborn.signals == ["TERM", "KILL"]


def test_the_loop_survives_a_failing_step_and_stops_every_worker(
    local: Local, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = local.fleet(spawner)
    local.desired_set(1)
    fleet.step()
    stopping, rounds = threading.Event(), [0]

    def broken() -> None:
        rounds[0] += 1
        if rounds[0] == 4:
            stopping.set()
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(fleet, "step", broken)
    run(fleet, stopping, fleet_seconds=0.01)
    assert rounds[0] == 4
    assert len(lines(caplog, "local fleet: step failed (ZeroDivisionError")) == 1
    assert fleet.workers == {}
    assert [s for signals in spawner.signals().values() for s in signals] == ["TERM"]


def test_a_new_local_queue_gets_the_messages_of_the_uploaded_videos(aws: dict[str, str]) -> None:
    waiting = [video_create().pk, video_create().pk]
    video_create(status=VideoStatus.READY)
    video_leased()  # recovery sends its message when its lease runs out
    assert queue_refill(aws["queue_url"]) == 2
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    bodies = [
        m["Body"]
        for m in sqs.receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(bodies) == sorted(f'{{"video_id": {pk}}}' for pk in waiting)
