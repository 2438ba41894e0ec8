"""Watch one burst through the live local loop, and hold it against the simulator.

``LoopWatch`` samples, about once a second, what a person would watch while the
whole loop runs (``make run``'s processes, or the end-to-end test's): the videos
by status, the local group's instances, and the control plane's timeline file
(``DEVSTACK_TIMELINE_FILE``: one JSON line per period, ``devstack.controlplane``).
``LoopWatch.result`` turns the samples into the figures the simulator reports
for the same workload (``simulated``: ``simulate_scaling``'s model with the same
policy, boot time and processing time), and ``comparison_table`` prints both.

The clock of both is the first slot boundary at or after the burst's upload:
the first tick that can count the burst is the simulator's tick at 0 s.

``devstack.localfleets.QueueWatch`` does the same for a fleet measured by its SQS
queue (make run's ``ai``); ``burst_watch`` samples it beside the video burst. With
several groups the timeline holds every group's periods; each watch keeps its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.localgroup import LocalGroup, group_read
from scaling.simulation.model import Workload, simulate
from scaling.simulation.policy import SimPolicy
from scaling.simulation.result import SimResult, percentile


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the loop's zero (the first slot boundary after the upload)
    waiting: int  # UPLOADED
    processing: int
    ready: int
    failed: int
    desired: int
    running: int  # instances not terminating (booting ones too)
    in_service: int  # booted
    protected: int
    busy: int  # instances holding a PROCESSING video's lease


@dataclass
class LoopRun:
    """The live run's figures, in the simulator's terms."""

    samples: list[Sample]
    periods: list[dict[str, Any]]  # the control plane's timeline, seconds from zero
    waits: list[float]  # first processing start - upload, per video, sorted
    instance_seconds: float
    peak_instances: int
    first_scale_out: float | None  # the first period that raised the desired capacity
    back_to_zero: float | None  # the first sample with nothing desired and nothing running
    busy_terminated: list[str] = field(default_factory=list)
    # Launch -> first video started, median over the instances that took one: the boot
    # the simulator should be given (DEVSTACK_BOOT_SECONDS + the worker's own start).
    boot_measured: float | None = None

    @property
    def p95_wait(self) -> float:
        return percentile(self.waits, 95)

    @property
    def instance_hours(self) -> float:
        return self.instance_seconds / 3600


class LoopWatch:
    def __init__(
        self,
        *,
        autoscaling: Any,
        ec2: Any,
        asg_name: str,
        boot_seconds: int,
        video_ids: list[int],
        zero: float,
        timeline: Path,
    ) -> None:
        self.autoscaling, self.ec2, self.asg_name = autoscaling, ec2, asg_name
        self.boot, self.video_ids, self.zero, self.timeline = (
            boot_seconds,
            video_ids,
            zero,
            timeline,
        )
        self.samples: list[Sample] = []
        self.first_start: dict[int, float] = {}  # video -> first processing start (epoch)
        self.launched: dict[str, float] = {}  # instance -> LaunchTime (epoch)
        self.gone: dict[str, float] = {}  # instance -> first time seen leaving or gone
        self.leases: dict[str, int] = {}  # instance -> video it held at the last sample
        self.busy_terminated: list[str] = []
        self.created: dict[int, float] = {}
        self.first_claim: dict[str, float] = {}  # instance -> its first video's start

    def sample(self, now: float | None = None) -> Sample:
        from video.models import Video, VideoStatus

        now = time.time() if now is None else now
        rows = list(
            Video.objects.filter(pk__in=self.video_ids).values_list(
                "pk", "status", "created_at", "processing_started_at", "lease_instance_id"
            )
        )
        counts = {s: 0 for s in VideoStatus.values}
        leases: dict[str, int] = {}
        for pk, status, created, started, instance in rows:
            counts[status] += 1
            self.created.setdefault(pk, created.timestamp())
            if started is not None:
                self.first_start.setdefault(pk, started.timestamp())
            if status == VideoStatus.PROCESSING and instance:
                leases[instance] = pk
                if started is not None:
                    self.first_claim.setdefault(instance, started.timestamp())
        group = group_read(self.autoscaling, self.ec2, self.asg_name)
        self._instances_track(group, now, leases)
        running = group.running()
        result = Sample(
            seconds=round(now - self.zero, 1),
            waiting=counts[VideoStatus.UPLOADED],
            processing=counts[VideoStatus.PROCESSING],
            ready=counts[VideoStatus.READY],
            failed=counts[VideoStatus.FAILED],
            desired=group.desired,
            running=len(running),
            in_service=sum(1 for i in running if i.booted(now, self.boot)),
            protected=sum(1 for i in running if i.protected),
            busy=len(leases),
        )
        self.samples.append(result)
        return result

    def _instances_track(self, group: LocalGroup, now: float, leases: dict[str, int]) -> None:
        present = {i.instance_id: i for i in group.instances if i.running}
        for instance in present.values():
            self.launched.setdefault(instance.instance_id, instance.launched_at)
        for instance_id in self.launched:
            if instance_id not in present and instance_id not in self.gone:
                self.gone[instance_id] = now
                # Its worker held a video at the last look: a busy instance was terminated.
                if instance_id in self.leases:
                    self.busy_terminated.append(instance_id)
        self.leases = leases

    def settled(self) -> bool:
        """Every video done and the group back to nothing."""
        last = self.samples[-1] if self.samples else None
        return bool(
            last
            and last.ready + last.failed == len(self.video_ids)
            and last.desired == 0
            and last.running == 0
        )

    def result(self) -> LoopRun:
        end = self.samples[-1].seconds + self.zero if self.samples else self.zero
        instance_seconds = sum(
            self.gone.get(i, end) - launched for i, launched in self.launched.items()
        )
        periods = timeline_periods(self.timeline, asg_name=self.asg_name, zero=self.zero)
        first_out = next((p["seconds"] for p in periods if p["set_to"] > p["desired"]), None)
        back = next(
            (
                s.seconds
                for s in self.samples
                if s.desired == 0 and s.running == 0 and s.ready + s.failed == len(self.video_ids)
            ),
            None,
        )
        waits = sorted(
            self.first_start[pk] - self.created[pk]
            for pk in self.video_ids
            if pk in self.first_start
        )
        return LoopRun(
            samples=self.samples,
            periods=periods,
            waits=waits,
            instance_seconds=instance_seconds,
            peak_instances=max((s.running for s in self.samples), default=0),
            first_scale_out=first_out,
            back_to_zero=back,
            busy_terminated=list(self.busy_terminated),
            boot_measured=self._boot_measured(),
        )

    def _boot_measured(self) -> float | None:
        boots = sorted(
            self.first_claim[i] - launched
            for i, launched in self.launched.items()
            if i in self.first_claim
        )
        return percentile(boots, 50) if boots else None


def timeline_periods(timeline: Path, *, asg_name: str, zero: float) -> list[dict[str, Any]]:
    """The control plane's periods of ``asg_name`` from ``zero - 1`` on, each with its
    ``seconds`` from zero (a line that names no group is the one group's)."""
    periods = []
    if timeline.exists():
        for line in timeline.read_text().splitlines():
            period = json.loads(line)
            if period.get("asg_name") not in (None, "", asg_name):
                continue
            if period["at"] >= zero - 1:
                period["seconds"] = round(period["at"] - zero, 1)
                periods.append(period)
    return periods


class FleetWatch(Protocol):
    """Another fleet watched beside the burst (devstack.localfleets.QueueWatch)."""

    def sample(self, now: float | None = None) -> object: ...
    def settled(self) -> bool: ...


def burst_upload(count: int, *, interval: int, lead: float = 2.5) -> tuple[list[int], float]:
    """Upload ``count`` videos ``lead`` seconds before a slot boundary, in one transaction
    (so the tick at that boundary counts the whole burst, as the simulator's tick at 0 s
    does; each job message is sent once it commits): (ids, when it committed)."""
    from django.db import transaction

    from video.burst import video_burst_upload

    wait = (interval - time.time() % interval) - lead
    time.sleep(wait if wait > 0 else wait + interval)
    committed: list[float] = []
    with transaction.atomic():
        # Registered first, so it runs first once the transaction commits (before the
        # job messages are sent): the moment the tick can count the burst.
        transaction.on_commit(lambda: committed.append(time.time()))
        ids = list(video_burst_upload(count=count).ids)
    return ids, committed[0]


def burst_watch(
    watch: LoopWatch,
    *,
    limit: float,
    on_sample: Callable[[Sample], None] | None = None,
    every: float = 1.0,
    others: Sequence[FleetWatch] = (),
) -> bool:
    """Sample until the loop has settled (and every one of ``others``: the other fleets)
    or ``limit`` seconds passed: settled or not."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sample = watch.sample()
        for other in others:
            if not other.settled():
                other.sample()
        if on_sample is not None:
            on_sample(sample)
        if watch.settled() and all(other.settled() for other in others):
            return True
        time.sleep(every)
    return False


def slot_zero(uploaded_at: float, interval: int) -> float:
    """The first slot boundary at or after the upload: the first tick that counts it."""
    return uploaded_at - uploaded_at % interval + (interval if uploaded_at % interval else 0)


def simulated(
    *,
    videos: int,
    processing_seconds: float,
    policy: SimPolicy,
    interval: int,
) -> SimResult:
    """The simulator's run of the same burst: every video uploaded at the first tick."""
    workload = Workload(
        arrivals=(0.0,) * videos,
        processing=(float(processing_seconds),) * videos,
        description=f"burst of {videos} x {processing_seconds:g} s",
    )
    return simulate(workload=workload, policy=policy, period_seconds=interval)


def sim_first_scale_out(result: SimResult) -> float | None:
    previous = result.policy.rules.min_size
    for tick in result.timeline:
        if tick.desired > previous:
            return tick.seconds
        previous = tick.desired
    return None


def sim_back_to_zero(result: SimResult) -> float | None:
    return result.simulated_seconds if result.drained else None


def comparison_rows(live: LoopRun, sims: Sequence[SimResult]) -> list[list[str]]:
    """[figure, live, then per simulation: value and live - sim] for the issue's five figures."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} s"

    def diff(a: float | None, b: float | None) -> str:
        return "-" if a is None or b is None else f"{a - b:+.0f} s"

    rows = [
        ["first scale-out", seconds(live.first_scale_out)],
        ["peak instances", str(live.peak_instances)],
        ["instance-hours", f"{live.instance_hours:.4f}"],
        ["p95 wait", seconds(live.p95_wait)],
        ["back to zero", seconds(live.back_to_zero)],
    ]
    for sim in sims:
        out, back = sim_first_scale_out(sim), sim_back_to_zero(sim)
        hours = (
            f"{(live.instance_hours / sim.instance_hours - 1) * 100:+.1f} %"
            if sim.instance_hours
            else "-"
        )
        rows[0] += [seconds(out), diff(live.first_scale_out, out)]
        rows[1] += [str(sim.peak_instances), f"{live.peak_instances - sim.peak_instances:+d}"]
        rows[2] += [f"{sim.instance_hours:.4f}", hours]
        rows[3] += [seconds(sim.p95_wait), diff(live.p95_wait, sim.p95_wait)]
        rows[4] += [seconds(back), diff(live.back_to_zero, back)]
    return rows


def comparison_table(live: LoopRun, sims: Sequence[SimResult]) -> str:
    header = ["figure", "live loop"]
    for sim in sims:
        header += [f"sim (boot {sim.policy.boot_seconds} s)", "live - sim"]
    rows = [header, *comparison_rows(live, sims)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def timelines_table(live: LoopRun, sim: SimResult) -> str:
    """Per period: the live control plane's view beside the simulator's tick."""
    by_tick = {round(t.seconds): t for t in sim.timeline}
    lines = ["   t | live: backlog in-svc desired -> set | sim: backlog in-svc desired"]
    for period in live.periods:
        tick = by_tick.get(round(period["seconds"] - live_offset(period, sim.period_seconds)))
        sim_part = (
            f"{tick.backlog:>7} {tick.in_service:>6} {tick.desired:>7}" if tick is not None else ""
        )
        backlog = "-" if period["backlog"] is None else str(period["backlog"])
        lines.append(
            f"{period['seconds']:>4.0f} | {backlog:>13} {period['in_service']:>6} "
            f"{period['desired']:>7} -> {period['set_to']:<3} | {sim_part}"
        )
    return "\n".join(lines)


def live_offset(period: dict[str, Any], interval: int) -> float:
    """The control plane evaluates half a period after the tick the simulator acts at."""
    return period["seconds"] % interval
