"""The whole local loop closes (issue 14), for two fleets at once (issue 19): a burst on
each wakes its group, grows it, is done, and both groups return to 0, with nothing but the
bursts done by hand.

Real parts: PostgreSQL, Redis, moto's server, gunicorn (the worker API), celery
worker and beat (the tick every 10 s slot: publish, lease recovery, the fleet
reconciler), ``python -m devstack.controlplane`` (target tracking's rules on what
``install_scaling_policy`` installed on moto) and ``python -m devstack.fleet`` (one
real ``manage.py video_worker`` per booted instance, each job 20 s). Beside the video
fleet (measured by the backlog port, leases) runs make run's second fleet, ``ai``:
measured by its SQS queue's depth, its own group, metric in Academy/Workers, a
stand-in consumer (``devstack.consumer``: receive, hold 8 s, delete) per booted
instance. The test only installs both policies (``install_scaling_policy --all``),
uploads the video burst and sends the ai jobs just before the same slot boundary,
watches (``devstack.loop.LoopWatch``, ``QueueWatch``) and SIGKILLs one video worker in
the middle of its job, inside the same burst (one run of the loop: every other video
shows the fault-free path). The test prints the video timeline beside the
simulator's for the same burst.

The control plane's scale-in alarm is SCALE_IN_DATAPOINTS periods here
(``DEVSTACK_SCALE_IN_DATAPOINTS``), not AWS's 15, so the group is back at 0 about
two minutes sooner; the simulator is given the same, and
tests/devstack/test_controlplane.py holds the real 15.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devstack.consumer import jobs_send
from devstack.localaws import local_aws_bootstrap, local_client
from devstack.localfleets import AI_ASG_NAME, AI_NAMESPACE, AI_QUEUE_NAME, QueueWatch
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
# The ai fleet: AI_JOBS messages, each held AI_HOLD s, AI_TARGET jobs per instance.
AI_JOBS = 16
AI_HOLD = 8
AI_TARGET = 4


def two_fleets(video_queue_url: str, ai_queue_url: str) -> list[dict[str, Any]]:
    """SCALING_FLEETS as `make run` sets it (devstack.launcher.local_fleets), with this
    test's targets."""
    return [
        {
            "name": "video",
            "asg_name": ASG,
            "source": "port",
            "queue_url": video_queue_url,
            "policy": {"target_value": TARGET, "warmup": WARMUP},
        },
        {
            "name": "ai",
            "asg_name": AI_ASG_NAME,
            "source": "sqs",
            "queue_url": ai_queue_url,
            "namespace": AI_NAMESPACE,
            "dimensions": {"WorkerType": "AI"},
            "leases": False,
            "policy": {"target_value": AI_TARGET, "warmup": WARMUP},
        },
    ]


@pytest.fixture
def loop(stack: Stack, aws: dict[str, str], settings: Any, tmp_path: Path) -> dict[str, Any]:
    """Every process of the loop, both fleets' policies installed as `make run` installs them."""
    ai = local_aws_bootstrap(
        aws["endpoint"], region=aws["region"], asg_name=AI_ASG_NAME, queue_name=AI_QUEUE_NAME
    )
    fleets = two_fleets(aws["queue_url"], ai["queue_url"])
    settings.SCALING_FLEETS = fleets
    timeline = tmp_path / "timeline.jsonl"
    stack.env.update(
        {
            "SCALING_FLEETS": json.dumps(fleets),
            "WORKER_API_KEY": KEY,
            "VIDEO_LEASE_SECONDS": str(LEASE),
            "VIDEO_WORKER_HOLD_SECONDS": str(HOLD),
            "DEVSTACK_CONSUMER_HOLD_SECONDS": str(AI_HOLD),
            "DEVSTACK_BOOT_SECONDS": str(BOOT),
            "DEVSTACK_TIMELINE_FILE": str(timeline),
            "DEVSTACK_SCALE_IN_DATAPOINTS": str(SCALE_IN_DATAPOINTS),
            "LOG_LEVEL": "INFO",
        }
    )
    # As make run installs them: a process of its own, each fleet on its own group.
    installed = stack.manage("install_scaling_policy", "--all")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    stack.worker_start()
    stack.beat_start()
    api = stack.gunicorn_start()
    stack._spawn("control", ["-m", "devstack.controlplane"])
    stack._spawn("fleet", ["-m", "devstack.fleet"], {"DEVSTACK_API_URL": api})
    wait_for(
        lambda: all(
            f"playing academy-backlog-target-tracking on {group}" in stack.log("control")
            for group in (ASG, AI_ASG_NAME)
        ),
        timeout=3 * INTERVAL,
        what="the control plane to read both installed policies",
    )
    return {"stack": stack, "timeline": timeline, "aws": aws, "ai_queue_url": ai["queue_url"]}


def burst_through_loop(
    loop: dict[str, Any], *, kill_mid_job: bool = False
) -> tuple[LoopRun, QueueWatch, list[str], tuple[int, str] | None]:
    """Upload the video burst and send the ai jobs just before a slot boundary, watch until
    both groups are back at 0, print the video timelines; optionally SIGKILL a busy video
    worker once 3 instances are busy. (video run, ai watch, ai bodies sent, killed)."""
    stack: Stack = loop["stack"]
    aws = loop["aws"]

    def client(service: str) -> Any:
        return local_client(service, aws["endpoint"], aws["region"])

    ids, uploaded_at = burst_upload(VIDEOS, interval=INTERVAL)
    bodies = jobs_send(client("sqs"), loop["ai_queue_url"], AI_JOBS, prefix="ai-loop")
    zero = slot_zero(uploaded_at, INTERVAL)
    watch = LoopWatch(
        autoscaling=client("autoscaling"),
        ec2=client("ec2"),
        asg_name=ASG,
        boot_seconds=BOOT,
        video_ids=ids,
        zero=zero,
        timeline=loop["timeline"],
    )
    ai_watch = QueueWatch(
        autoscaling=client("autoscaling"),
        ec2=client("ec2"),
        sqs=client("sqs"),
        asg_name=AI_ASG_NAME,
        queue_url=loop["ai_queue_url"],
        boot_seconds=BOOT,
        zero=zero,
        timeline=loop["timeline"],
    )
    killed: list[tuple[int, str]] = []

    def on_sample(sample: Sample) -> None:
        for name in ("api", "worker", "beat", "control", "fleet"):
            assert stack.alive(name), f"{name} exited:\n{stack.log(name)[-3000:]}"
        if kill_mid_job and not killed and sample.busy >= 3:
            killed.append(worker_kill_mid_job(stack))

    settled = burst_watch(watch, limit=SETTLE_LIMIT, on_sample=on_sample, others=[ai_watch])
    run = watch.result()
    sims = [sim_run(BOOT)]
    if run.boot_measured is not None:
        sims.append(sim_run(round(run.boot_measured)))
    print(f"\n{timelines_table(run, sims[-1])}\n\n{comparison_table(run, sims)}")
    print(
        f"\nai: {AI_JOBS} jobs x {AI_HOLD} s, peak {ai_watch.peak_instances} instances, "
        f"back to 0 at {ai_watch.back_to_zero} s; periods (t, backlog, desired -> set):\n"
        + "\n".join(
            f"{p['seconds']:>5.0f} {p['backlog']!s:>4} {p['desired']:>3} -> {p['set_to']}"
            for p in ai_watch.periods()
        )
    )
    assert settled, (
        f"not back at 0 after {SETTLE_LIMIT:.0f} s: video {watch.samples[-1]}, "
        f"ai {ai_watch.samples[-1] if ai_watch.samples else None}"
    )
    return run, ai_watch, bodies, (killed[0] if killed else None)


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


def wakes_and_grows(periods: list[dict[str, Any]], *, target: int) -> dict[str, Any]:
    """The group wakes within 2 periods of its first datapoint and, when it scales out,
    grows to what its policy aims for, ceil(backlog / target): that period."""
    first_data = next(p for p in periods if p["backlog"])
    wake = next(p for p in periods if p["reason"] == "wake")
    assert wake["at"] - first_data["at"] <= 2 * INTERVAL, periods[:6]
    out = next(p for p in periods if p["reason"] == "scale-out")
    assert out["set_to"] == min(MAX_SIZE, math.ceil(out["backlog"] / target)), out
    return out


def loop_holds(run: LoopRun) -> None:
    """What every run must show, killed worker or not."""
    out = wakes_and_grows(run.periods, target=TARGET)
    assert run.peak_instances == out["set_to"], run.peak_instances
    # No busy instance was terminated; the group is back to 0.
    assert run.busy_terminated == []
    assert run.back_to_zero is not None
    # Every video READY exactly once: one READY row each, and the finish is never repeated.
    assert Video.objects.filter(status=VideoStatus.READY).count() == VIDEOS


def test_a_burst_wakes_the_group_grows_it_and_returns_it_to_zero_losing_nothing_to_a_kill(
    loop: dict[str, Any],
) -> None:
    """A burst on each fleet: both groups wake, grow and return to 0 while one video worker
    is SIGKILLed mid-job; the killed video is recovered and finished, every other one took
    one claim; every ai job was consumed once and the ai queue is empty."""
    run, ai_watch, bodies, killed = burst_through_loop(loop, kill_mid_job=True)
    assert killed is not None, "no worker was ever busy enough to kill"
    ai_holds(loop, ai_watch, bodies)
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


_CONSUMED = re.compile(r"consumed (\{.*?\}) in ")


def ai_holds(loop: dict[str, Any], watch: QueueWatch, bodies: list[str]) -> None:
    """The SQS-measured fleet: woke on its queue's depth, grew, every job consumed (deleted)
    exactly once, its queue empty and its group back at 0."""
    stack: Stack = loop["stack"]
    wakes_and_grows(watch.periods(), target=AI_TARGET)
    assert watch.back_to_zero is not None, watch.samples[-5:]
    assert watch.samples[-1].depth == 0
    consumed = Counter(_CONSUMED.findall(stack.log("fleet")))
    assert consumed == Counter(bodies), consumed
    # Its metric went to its own namespace, on its own group's dimensions: the policy the
    # control plane played for the ai group is the one --all installed there.
    played = f"playing academy-backlog-target-tracking on {AI_ASG_NAME}: per-instance target "
    assert f"{played}{AI_TARGET:g}," in stack.log("control")
