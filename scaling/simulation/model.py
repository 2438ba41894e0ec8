"""What target tracking would do with a workload, before anything touches AWS.

A deterministic discrete-time model: the clock advances one metric period at a
time (``SCALING_PUBLISH_INTERVAL_SECONDS``); between two ticks the workers take
videos first-in first-out, one at a time each, in continuous time. At every tick
the model measures the backlog exactly as the publisher does (UPLOADED +
PROCESSING), feeds it to target tracking's two alarms and its proportional rule,
and applies the resulting desired capacity. Every modelling choice, and the AWS
page it comes from or the word "assumption", is listed in ``docs/simulator.md``.

The simulation functions are pure: they take a ``Workload`` whose randomness was
spent while it was built (``scaling.simulation.workloads``), so every policy
compared on one workload sees the very same videos (only the termination choice
without protection draws from a ``random.Random`` of its own, seeded by
``simulate``'s ``seed``: ``scaling.simulation.termination``). The simulator follows the
policy's rules (``scaling.policy.aim`` and ``scaling.policy.options``); the
policy never imports the simulator.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scaling.policy.options import target_from_wait
from scaling.simulation.levers_run import PoolLedger, Predictor, span_measured
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.result import SimResult, Tick
from scaling.simulation.termination import termination_pick
from scaling.simulation.tracking import Observation, TargetTracking

DAY_SECONDS = 86_400

# A run that has not drained this long after the last upload is reported as not drained.
DRAIN_LIMIT_SECONDS = DAY_SECONDS


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """Upload times (seconds from the start, sorted) and each video's processing time."""

    arrivals: tuple[float, ...]
    processing: tuple[float, ...]
    description: str
    # Uploads before this are history (they feed the forecast); waits and costs are
    # measured from here on.
    measure_from: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "measure_from_seconds": self.measure_from,
            "videos": len(self.arrivals),
            "last_upload_seconds": self.arrivals[-1] if self.arrivals else 0.0,
            "mean_processing_seconds": (
                round(sum(self.processing) / len(self.processing), 3) if self.processing else 0.0
            ),
        }


# --------------------------------------------------------------------------- run


@dataclass
class _Instance:
    launched_at: float  # joined the group: launched cold, or left the warm pool
    ready_at: float  # InService and taking videos
    busy_until: float = -math.inf  # until its first video, it has never been busy
    job: int | None = None
    job_started: float = 0.0
    terminated_at: float | None = None

    def available_at(self) -> float:
        return max(self.ready_at, self.busy_until)


def simulate(
    *, workload: Workload, policy: SimPolicy, period_seconds: int, seed: int = 0
) -> SimResult:
    """Replay the workload against the policy, one metric period per step.

    ``seed`` drives only the termination choice without protection.
    """
    if period_seconds <= 0:
        raise SimulationError(f"the period must be above 0 seconds, got {period_seconds}")
    run = _Run(workload=workload, policy=policy, period=period_seconds, seed=seed)
    return run.run()


class _Run:
    def __init__(self, *, workload: Workload, policy: SimPolicy, period: int, seed: int) -> None:
        self.arrivals = workload.arrivals
        self.processing = workload.processing
        self.measure_from = workload.measure_from
        self.policy = policy
        self.period = period
        n = len(self.arrivals)
        self.start_at: list[float | None] = [None] * n
        self.finish_at: list[float | None] = [None] * n
        self.finishing: list[tuple[float, int]] = []  # heap of (finish time, video)
        self.finished = 0
        self.next_video = 0  # next never-started video, in upload order
        self.requeued: deque[tuple[int, float]] = deque()  # (video, available since)
        # The group starts at rest: MinSize instances, booted and warmed long ago.
        settled = -float(policy.boot_seconds + policy.warmup_seconds)
        self.group = [
            _Instance(launched_at=0.0, ready_at=settled) for _ in range(policy.rules.min_size)
        ]
        self.desired = policy.rules.min_size
        self.rng = random.Random(seed)
        self.rework = 0.0
        self.restarted = 0
        self.instance_seconds = 0.0
        self.pool = PoolLedger(policy=policy, desired=self.desired, measure_from=self.measure_from)
        self.predictor = Predictor(policy=policy, period=period)

    def run(self) -> SimResult:
        p = self.policy
        tracking = TargetTracking(p.rules)
        actions = 0
        peak = 0
        timeline: list[Tick] = []
        limit = (self.arrivals[-1] if self.arrivals else 0.0) + DRAIN_LIMIT_SECONDS
        drained = False
        step = 0
        while True:
            now = float(step * self.period)
            measured = now >= self.measure_from
            self.advance(until=now)
            while self.finishing and self.finishing[0][0] <= now:
                finish, video = heapq.heappop(self.finishing)
                if self.finish_at[video] == finish:  # else the run was cut by a scale-in
                    self.finished += 1
            # What the publisher measures: UPLOADED + PROCESSING at the tick.
            backlog = bisect.bisect_right(self.arrivals, now) - self.finished
            floor = self.predictor.tick(now=now, backlog=backlog)

            group = self.group
            in_service = warm = 0
            for i in group:
                if i.ready_at <= now:
                    in_service += 1
                    if i.ready_at + p.warmup_seconds <= now:
                        warm += 1
            decision = tracking.step(
                Observation(
                    backlog=backlog,
                    in_service=in_service,
                    warm=warm,
                    live=len(group),
                    desired=self.desired,
                )
            )
            # forecast-and-scale: the higher of the two; target tracking cannot scale in
            # below the forecast capacity (docs/simulator.md).
            wanted = max(decision.desired, floor)
            if wanted != self.desired:
                actions += measured
                self.resize(wanted, now=now)
            self.terminate_surplus(now=now)
            self.pool.refill(desired=self.desired, now=now)
            if measured:
                peak = max(peak, len(self.group))
            timeline.append(Tick(now, backlog, decision.metric, self.desired, in_service))

            done = self.finished == len(self.arrivals)
            if done and self.desired == p.rules.min_size and len(self.group) == p.rules.min_size:
                drained = True
                break
            if now >= limit:
                break
            step += 1

        end = timeline[-1].seconds
        for inst in self.group:
            self.instance_seconds += span_measured(inst.launched_at, end, self.measure_from)
        stopped, running = self.pool.close(end=end)
        waits = sorted(
            start - arrival
            for start, arrival, finish in zip(
                self.start_at, self.arrivals, self.finish_at, strict=True
            )
            if start is not None and finish is not None and arrival >= self.measure_from
        )
        return SimResult(
            policy=p,
            period_seconds=self.period,
            waits=waits,
            peak_instances=peak,
            instance_seconds=self.instance_seconds,
            scaling_actions=actions,
            drained=drained,
            simulated_seconds=end,
            timeline=timeline,
            rework_seconds=self.rework,
            restarted=self.restarted,
            pool_stopped_seconds=stopped,
            pool_running_seconds=running,
            measured_from_seconds=self.measure_from,
            forecast=self.predictor.used,
        )

    def resize(self, wanted: int, *, now: float) -> None:
        """Set the desired capacity; launch what it adds, from the warm pool first."""
        self.desired = wanted
        missing = wanted - len(self.group)
        if missing <= 0:
            return
        boots = self.pool.draw(missing, now=now)  # one boot time per new instance
        self.group += [_Instance(launched_at=now, ready_at=now + boot) for boot in boots]

    def terminate_surplus(self, *, now: float) -> None:
        """Remove what the desired capacity no longer covers, as protection allows: back to
        the warm pool (ReuseOnScaleIn, while it has room) or terminated."""
        live = self.group
        picked = termination_pick(
            live,
            surplus=len(live) - self.desired,
            now=now,
            protection=self.policy.protection,
            grace=self.period,
            rng=self.rng,
        )
        if not picked:
            return
        gone = {id(i) for i in picked}
        self.group = [i for i in live if id(i) not in gone]
        for inst in picked:
            inst.terminated_at = now
            self.instance_seconds += span_measured(inst.launched_at, now, self.measure_from)
            self.pool.scale_in(desired=self.desired, now=now)
            if inst.job is not None and inst.busy_until > now:
                # Its video goes back to the head of the queue and starts over.
                self.rework += now - inst.job_started
                self.restarted += 1
                self.finish_at[inst.job] = None
                self.start_at[inst.job] = None
                self.requeued.append((inst.job, now))
                inst.job = None

    def advance(self, *, until: float) -> None:
        """Start every video that a live worker can take before ``until``, in FIFO order."""
        live = self.group
        if not live:
            return
        arrivals = self.arrivals
        while True:
            if self.requeued:
                video, ready = self.requeued[0]
            elif self.next_video < len(arrivals):
                video, ready = self.next_video, arrivals[self.next_video]
            else:
                return
            if ready >= until:
                return
            worker = min(live, key=_Instance.available_at)
            start = max(ready, worker.available_at())
            if start >= until:
                return
            if self.requeued:
                self.requeued.popleft()
            else:
                self.next_video += 1
            finish = start + self.processing[video]
            worker.busy_until = finish
            worker.job = video
            worker.job_started = start
            self.start_at[video] = start
            self.finish_at[video] = finish
            heapq.heappush(self.finishing, (finish, video))


# --------------------------------------------------------------------------- advice


def target_candidates(*, acceptable_wait: float, processing_mean: float) -> list[float]:
    """Targets around AWS's formula (acceptable wait / processing time), low to high."""
    base = target_from_wait(acceptable_wait=acceptable_wait, processing_time=processing_mean)
    factors = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
    return sorted({max(0.1, round(base * f, 2)) for f in factors})


def recommend(results: Sequence[SimResult], *, acceptable_wait: float) -> SimResult | None:
    """The cheapest result whose p95 wait meets the requirement (ties: the shorter wait)."""
    passing = [r for r in results if r.drained and r.p95_wait <= acceptable_wait]
    if not passing:
        return None
    return min(
        passing,
        key=lambda r: (round(r.instance_seconds, 6), r.p95_wait, -r.policy.rules.target),
    )
