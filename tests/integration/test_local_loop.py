"""The whole local loop closes (issue 14): a burst wakes the group, grows it, is done, and
the group returns to 0, with nothing but the burst done by hand.

Real parts: PostgreSQL, Redis, moto's server, gunicorn (the worker API), celery
worker and beat (the tick every 10 s slot: publish, lease recovery, the fleet
reconciler), ``python -m devstack.controlplane`` (target tracking's rules on what
``install_scaling_policy`` installed on moto) and ``python -m devstack.fleet`` (one
real ``manage.py video_worker`` per booted instance, each job 20 s). The test only
installs the policy, uploads the burst, watches (``devstack.loop.LoopWatch``) and
SIGKILLs one worker in the middle of its job, inside the same burst (one run of the
loop: every other video shows the fault-free path). The test prints the timeline
beside the simulator's for the same burst.

The control plane's scale-in alarm is SCALE_IN_DATAPOINTS periods here
(``DEVSTACK_SCALE_IN_DATAPOINTS``), not AWS's 15, so the group is back at 0 about
two minutes sooner; the simulator is given the same, and
tests/devstack/test_controlplane.py holds the real 15.
"""

from __future__ import annotations

import math
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from devstack.localaws import local_client
from devstack.loop import (
    LoopRun,
    LoopWatch,
    Sample,
    burst_upload,
    burst_watch,
    comparison_table,
    simulated,
    slot_zero,
    timelines_table,
)
from scaling.simulation.policy import SimPolicy
from scaling.simulation.result import SimResult
from scaling.simulation.tracking import TrackingRules
from tests.integration.conftest import INTERVAL
from tests.support.stack import Stack, wait_for
from video.models import Video, VideoRecovery, VideoStatus

# One worker runs the loop and the soak one after the other (tests/conftest.py).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.xdist_group("cpu_heavy_scenarios"),
]

ASG = "academy-video-worker-asg"
VIDEOS = 30
HOLD = 20  # seconds each job takes (the stand-in job)
BOOT = 5  # DEVSTACK_BOOT_SECONDS: launch -> worker started, in service
WARMUP = INTERVAL  # the installed EstimatedInstanceWarmup
TARGET = 3
MAX_SIZE = 10  # the local group's (devstack.localaws)
LEASE = 8
KEY = "integration-loop-key-0123456789abcd"
SETTLE_LIMIT = 480.0  # seconds: the loop must be back at 0 well before this
# The scale-in alarm's datapoints (AWS: 15, played by default; held by test_controlplane).
SCALE_IN_DATAPOINTS = 3


@pytest.fixture
def loop(stack: Stack, aws: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """Every process of the loop, the default policy installed as `make run` installs it."""
    call_command(
        "install_scaling_policy",
        "--target-value",
        str(TARGET),
        "--warmup",
        str(WARMUP),
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )
    timeline = tmp_path / "timeline.jsonl"
    stack.env.update(
        {
            "WORKER_API_KEY": KEY,
            "VIDEO_LEASE_SECONDS": str(LEASE),
            "VIDEO_WORKER_HOLD_SECONDS": str(HOLD),
            "DEVSTACK_BOOT_SECONDS": str(BOOT),
            "DEVSTACK_TIMELINE_FILE": str(timeline),
            "DEVSTACK_SCALE_IN_DATAPOINTS": str(SCALE_IN_DATAPOINTS),
            "LOG_LEVEL": "INFO",
        }
    )
    stack.worker_start()
    stack.beat_start()
    api = stack.gunicorn_start()
    stack._spawn("control", ["-m", "devstack.controlplane"])
    stack._spawn("fleet", ["-m", "devstack.fleet"], {"DEVSTACK_API_URL": api})
    wait_for(
        lambda: "playing academy-backlog-target-tracking" in stack.log("control"),
        timeout=3 * INTERVAL,
        what="the control plane to read the installed policy",
    )
    return {"stack": stack, "timeline": timeline, "aws": aws}


def burst_through_loop(
    loop: dict[str, Any], *, kill_mid_job: bool = False
) -> tuple[LoopRun, tuple[int, str] | None]:
    """Upload the burst just before a slot boundary, watch until the group is back at 0,
    print both timelines; optionally SIGKILL a busy worker once 3 instances are busy."""
    stack: Stack = loop["stack"]
    aws = loop["aws"]
    ids, uploaded_at = burst_upload(VIDEOS, interval=INTERVAL)
    watch = LoopWatch(
        autoscaling=local_client("autoscaling", aws["endpoint"], aws["region"]),
        ec2=local_client("ec2", aws["endpoint"], aws["region"]),
        asg_name=ASG,
        boot_seconds=BOOT,
        video_ids=ids,
        zero=slot_zero(uploaded_at, INTERVAL),
        timeline=loop["timeline"],
    )
    killed: list[tuple[int, str]] = []

    def on_sample(sample: Sample) -> None:
        for name in ("api", "worker", "beat", "control", "fleet"):
            assert stack.alive(name), f"{name} exited:\n{stack.log(name)[-3000:]}"
        if kill_mid_job and not killed and sample.busy >= 3:
            killed.append(worker_kill_mid_job(stack))

    settled = burst_watch(watch, limit=SETTLE_LIMIT, on_sample=on_sample)
    run = watch.result()
    sims = [sim_run(BOOT)]
    if run.boot_measured is not None:
        sims.append(sim_run(round(run.boot_measured)))
    print(f"\n{timelines_table(run, sims[-1])}\n\n{comparison_table(run, sims)}")
    assert settled, f"not back at 0 after {SETTLE_LIMIT:.0f} s: {watch.samples[-1]}"
    return run, (killed[0] if killed else None)


def sim_run(boot: int) -> SimResult:
    rules = TrackingRules(
        mode="per-instance",
        target=TARGET,
        max_size=MAX_SIZE,
        scale_in_datapoints=SCALE_IN_DATAPOINTS,
    )
    policy = SimPolicy(rules=rules, warmup_seconds=WARMUP, boot_seconds=boot)
    return simulated(videos=VIDEOS, processing_seconds=HOLD, policy=policy, interval=INTERVAL)


_STARTED = re.compile(r"instance (i-\w+) booted: worker pid (\d+) started")


def worker_kill_mid_job(stack: Stack) -> tuple[int, str]:
    """SIGKILL the worker of a busy instance: (the video it held, the instance)."""
    pids = dict(_STARTED.findall(stack.log("fleet")))
    held = Video.objects.filter(status=VideoStatus.PROCESSING).exclude(lease_instance_id="")
    for video in held.order_by("pk"):
        pid = pids.get(video.lease_instance_id)
        if pid is not None:
            os.kill(int(pid), signal.SIGKILL)
            return video.pk, video.lease_instance_id
    raise AssertionError(f"no busy worker's pid in the fleet's log: {pids}")


def loop_holds(run: LoopRun) -> None:
    """What every run must show, killed worker or not."""
    periods = run.periods
    first_data = next(p for p in periods if p["backlog"])
    wake = next(p for p in periods if p["reason"] == "wake")
    # The group wakes within 2 periods of the first datapoint.
    assert wake["at"] - first_data["at"] <= 2 * INTERVAL, periods[:6]
    # It grows to what the policy aims for: ceil(backlog / target) when it scales out.
    out = next(p for p in periods if p["reason"] == "scale-out")
    assert out["set_to"] == min(MAX_SIZE, math.ceil(out["backlog"] / TARGET)), out
    assert run.peak_instances == out["set_to"], run.peak_instances
    # No busy instance was terminated; the group is back to 0.
    assert run.busy_terminated == []
    assert run.back_to_zero is not None
    # Every video READY exactly once: one READY row each, and the finish is never repeated.
    assert Video.objects.filter(status=VideoStatus.READY).count() == VIDEOS


def test_a_burst_wakes_the_group_grows_it_and_returns_it_to_zero_losing_nothing_to_a_kill(
    loop: dict[str, Any],
) -> None:
    """One burst: the group wakes, grows and returns to 0 while one worker is SIGKILLed
    mid-job; the killed video is recovered and finished, every other one took one claim."""
    run, killed = burst_through_loop(loop, kill_mid_job=True)
    assert killed is not None, "no worker was ever busy enough to kill"
    video_id, instance_id = killed
    loop_holds(run)
    stack: Stack = loop["stack"]
    video = Video.objects.get(pk=video_id)
    # Its lease ran out, the tick recovered it, another claim finished it.
    assert video.status == VideoStatus.READY
    assert video.attempts == 2
    assert list(VideoRecovery.objects.values_list("video_id", "instance_id")) == [
        (video_id, instance_id)
    ], "only the killed worker's video is recovered"
    # Every other video was claimed once: nothing lost, nothing processed twice.
    others = Video.objects.exclude(pk=video_id).values_list("attempts", flat=True)
    assert set(others) == {1}
    assert stack.log("api").count("Video finished |") == VIDEOS
    for name in ("api", "worker", "control", "fleet"):
        assert "Traceback" not in stack.log(name), stack.log(name)[-3000:]
