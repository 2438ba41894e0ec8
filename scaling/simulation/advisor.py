"""The advisor behind ``simulate_scaling --recommend``: the cheapest whole bill under a wait.

It tries publishing intervals x targets x levers (nothing, a warm pool, predictive
scaling in forecast-and-scale, both), bills each run (``scaling.simulation.pricing``)
over one common window, and keeps the cheapest total whose p95 wait is within the
asked one (ties: the shorter p95). To keep a weeks-long workload's run time bounded
it prunes: every target at the anchor interval (60 s when tried), then, for each
lever, only its best target and that target's neighbours at the faster intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from scaling.simulation.forecast import MIN_HISTORY_HOURS, PredictiveSpec
from scaling.simulation.model import Workload, simulate
from scaling.simulation.policy import SimPolicy
from scaling.simulation.pricing import PRICES_SOURCE, Bill, Prices, bill
from scaling.simulation.report import advice_table
from scaling.simulation.result import SimResult
from scaling.simulation.warm_pool import WarmPoolSpec

LEVERS: tuple[str, ...] = ("none", "warm pool", "predictive", "both")
SCALE_IN_DATAPOINTS = 15  # target tracking's scale-in alarm (docs/simulator.md, item 7)


@dataclass(frozen=True)
class Candidate:
    lever: str
    result: SimResult
    bill: Bill

    @property
    def period(self) -> int:
        return self.result.period_seconds

    @property
    def target(self) -> float:
        return self.result.policy.rules.target

    def passes(self, wait: float) -> bool:
        return self.result.drained and self.result.p95_wait <= wait

    def key(self) -> tuple[float, float, float]:
        return (round(self.bill.total, 6), self.result.p95_wait, -self.target)

    def as_json(self) -> dict[str, Any]:
        return {**self.result.as_json(), "lever": self.lever, "bill": self.bill.as_json()}


@dataclass(frozen=True)
class Advice:
    acceptable_wait: float
    candidates: list[Candidate]  # every run the choice was made from, in the order tried
    choice: Candidate | None  # None: nothing met the wait
    levers: tuple[str, ...]  # the levers tried
    comparison: list[Candidate]  # each lever at the choice's interval and target
    reasons: list[str]  # one sentence per lever, then the interval's trade
    notes: list[str]  # what was left out, and why
    seconds: float  # the advisor's own run time
    prices: Prices

    def lines(self) -> list[tuple[str, str]]:
        """The text report: (style, line) pairs, as Study.lines."""
        wait = self.acceptable_wait
        out = [
            ("", f"Prices: {PRICES_SOURCE}; every bill covers {self._window()}."),
            ("", advice_table(self.candidates, chosen=self.choice, wait=wait)),
            *(("warning", note) for note in self.notes),
        ]
        choice = self.choice
        if choice is None:
            return out
        r, b = choice.result, choice.bill
        levers = "target tracking alone" if choice.lever == "none" else f"with {choice.lever}"
        out.append(
            (
                "success",
                f"Cheapest whole bill with p95 wait <= {wait:g} s: interval {choice.period} s, "
                f"target {choice.target:g}, {levers} (p95 {r.p95_wait:.0f} s, "
                f"{r.instance_hours:.2f} instance-hours, {_money(b.total)}).",
            )
        )
        out.append(("", "Why:"))
        out += [("", f"  {reason}") for reason in self.reasons]
        out.append(("", f"Each lever at interval {choice.period} s, target {choice.target:g}:"))
        out.append(("", advice_table(self.comparison, chosen=choice, wait=wait)))
        out.append(
            (
                "",
                f"The advisor ran {len(self.candidates)} simulations in {self.seconds:.1f} s. "
                f"Install with SCALING_PUBLISH_INTERVAL_SECONDS set to {choice.period} where "
                "the publisher runs (the policy's period is the publishing interval):",
            )
        )
        return out

    def _window(self) -> str:
        hours = self.candidates[0].bill.window_seconds / 3600 if self.candidates else 0.0
        return f"the same {hours:.1f} h (the longest measured window of the runs)"

    def as_json(self) -> dict[str, Any]:
        return {
            "acceptable_wait_seconds": self.acceptable_wait,
            "levers": list(self.levers),
            "candidates": [c.as_json() for c in self.candidates],
            "choice": self.choice.as_json() if self.choice else None,
            "comparison": [c.as_json() for c in self.comparison],
            "reasons": self.reasons,
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
            "prices": self.prices.as_json(),
        }


def _lever_policy(
    base: SimPolicy, lever: str, *, pool: WarmPoolSpec, predictive: PredictiveSpec
) -> SimPolicy:
    return replace(
        base,
        warm_pool=pool if lever in ("warm pool", "both") else None,
        predictive=predictive if lever in ("predictive", "both") else None,
    )


def advise(
    *,
    workload: Workload,
    policy_for: Callable[[float], SimPolicy],
    periods: Sequence[int],
    targets: Sequence[float],
    acceptable_wait: float,
    prices: Prices,
    pool: WarmPoolSpec,
    predictive: PredictiveSpec,
    seed: int = 0,
) -> Advice:
    """``policy_for(target)``: the policy as flagged, without levers."""
    started = time.perf_counter()
    notes: list[str] = []
    levers = list(LEVERS)
    history_hours = workload.measure_from / 3600
    mode = policy_for(targets[0]).rules.mode
    if mode != "per-instance":
        levers = ["none", "warm pool"]
        notes.append(
            "Predictive scaling was left out: it forecasts capacity from a per-instance "
            "target (--mode per-instance)."
        )
    elif history_hours < MIN_HISTORY_HOURS:
        levers = ["none", "warm pool"]
        notes.append(
            f"Predictive scaling was left out: the workload has {history_hours:.1f} h of "
            f"history before its measured part and AWS forecasts only from "
            f"{MIN_HISTORY_HOURS} h (try --pattern academy --weeks 2 or more)."
        )
    runs: dict[tuple[int, str, float], SimResult] = {}
    order: list[tuple[int, str, float]] = []

    def run(period: int, lever: str, target: float) -> SimResult:
        key = (period, lever, target)
        if key not in runs:
            policy = _lever_policy(policy_for(target), lever, pool=pool, predictive=predictive)
            runs[key] = simulate(workload=workload, policy=policy, period_seconds=period, seed=seed)
            order.append(key)
        return runs[key]

    anchor = 60 if 60 in periods else max(periods)
    ordered = sorted(targets)
    for lever in levers:
        at_anchor = [run(anchor, lever, t) for t in ordered]
        passing = [r for r in at_anchor if r.drained and r.p95_wait <= acceptable_wait]
        if passing:
            best = min(passing, key=lambda r: (r.instance_seconds, r.p95_wait))
        else:
            best = min(at_anchor, key=lambda r: r.p95_wait)
        i = ordered.index(best.policy.rules.target)
        for period in periods:
            if period != anchor:
                for t in ordered[max(0, i - 1) : i + 2]:
                    run(period, lever, t)
    # One window for every bill, so the fixed CloudWatch charges compare like for like.
    window = max(r.simulated_seconds - r.measured_from_seconds for r in runs.values())
    priced = {
        k: Candidate(k[1], runs[k], bill(runs[k], prices=prices, window_seconds=window))
        for k in order
    }
    passing_all = [c for c in priced.values() if c.passes(acceptable_wait)]
    choice = min(passing_all, key=Candidate.key) if passing_all else None
    comparison: list[Candidate] = []
    reasons: list[str] = []
    if choice is not None:
        for lever in levers:
            key = (choice.period, lever, choice.target)
            run(choice.period, lever, choice.target)
            if key not in priced:
                priced[key] = Candidate(
                    lever, runs[key], bill(runs[key], prices=prices, window_seconds=window)
                )
            comparison.append(priced[key])
        reasons = _reasons(
            list(priced.values()), choice=choice, levers=levers, wait=acceptable_wait
        )
    return Advice(
        acceptable_wait=acceptable_wait,
        candidates=[priced[k] for k in order],
        choice=choice,
        levers=tuple(levers),
        comparison=comparison,
        reasons=reasons,
        notes=notes,
        seconds=time.perf_counter() - started,
        prices=prices,
    )


def _best(candidates: list[Candidate], *, wait: float, **where: Any) -> Candidate | None:
    chosen = [
        c
        for c in candidates
        if c.passes(wait) and all(getattr(c, k) == v for k, v in where.items())
    ]
    return min(chosen, key=Candidate.key) if chosen else None


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _lever_reason(
    lever: str, with_it: Candidate | None, alone: Candidate | None, *, period: int, wait: float
) -> str:
    if with_it is None:
        return f"{lever}: no target tried meets p95 <= {wait:g} s with it at {period} s."
    if alone is None:
        return (
            f"{lever}: pays: without it no target tried meets the wait at {period} s; with "
            f"it {_money(with_it.bill.total)} (target {with_it.target:g}, p95 "
            f"{with_it.result.p95_wait:.0f} s)."
        )
    a, b = alone.bill, with_it.bill
    instance = a.instance - b.instance
    p95 = alone.result.p95_wait - with_it.result.p95_wait
    extra = (b.volumes + b.pool) - (a.volumes + a.pool)
    verdict = "pays" if with_it.key() < alone.key() else "does not pay"
    if abs(instance) < 0.005:
        spent = "leaves instance-hours as they are"
    else:
        spent = f"{'saves' if instance > 0 else 'adds'} {_money(abs(instance))} of instance-hours"
    if abs(p95) < 0.5:
        waited = "leaves p95 as it is"
    else:
        waited = f"{'shortens' if p95 > 0 else 'lengthens'} p95 by {abs(p95):.0f} s"
    paid = f"for {_money(extra)} of volumes/pool" if extra >= 0.005 else "at no other cost"
    return (
        f"{lever}: {verdict}: it {spent} and {waited} {paid} (best at {period} s: target "
        f"{with_it.target:g}, {_money(b.total)} against {_money(a.total)} without it)."
    )


def _reasons(
    candidates: list[Candidate], *, choice: Candidate, levers: list[str], wait: float
) -> list[str]:
    period = choice.period
    alone = _best(candidates, wait=wait, period=period, lever="none")
    reasons = [
        _lever_reason(
            lever,
            _best(candidates, wait=wait, period=period, lever=lever),
            alone,
            period=period,
            wait=wait,
        )
        for lever in levers
        if lever != "none"
    ]
    for other in sorted({c.period for c in candidates} - {period}):
        rival = _best(candidates, wait=wait, period=other, lever=choice.lever)
        if rival is None:
            reasons.append(
                f"interval {other} s: no target tried with {choice.lever} meets the wait."
            )
            continue
        a, b = choice.bill, rival.bill
        cw = b.cloudwatch - a.cloudwatch
        rest = (b.instance + b.volumes + b.pool) - (a.instance + a.volumes + a.pool)
        reasons.append(
            f"interval {other} s against {period} s: CloudWatch "
            f"{'+' if cw >= 0 else '-'}{_money(abs(cw))} (alarms {_money(b.alarms)} against "
            f"{_money(a.alarms)}, PutMetricData {_money(b.api)} against {_money(a.api)}), "
            f"instances and volumes {'+' if rest >= 0 else '-'}{_money(abs(rest))} (the idle "
            f"tail: {SCALE_IN_DATAPOINTS} scale-in datapoints are "
            f"{SCALE_IN_DATAPOINTS * other / 60:g} min against "
            f"{SCALE_IN_DATAPOINTS * period / 60:g} min), p95 {rival.result.p95_wait:.0f} s "
            f"against {choice.result.p95_wait:.0f} s: total {_money(b.total)} against "
            f"{_money(a.total)}."
        )
    return reasons
