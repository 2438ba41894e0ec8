"""One run of ``simulate_scaling``: a workload, the policies tried on it, and the choice.

``study_run`` takes the command's flags and does everything but print: check
the flags, build the workload, simulate one policy (or compare several, or
look for the cheapest target that meets a wait), and hand back a ``Study`` that
knows how to show itself as text or JSON. Every bad input is a
``SimulationError`` with one sentence.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scaling.conf import ALLOWED_INTERVALS
from scaling.fleets import fleet_get
from scaling.metric_spec import metric_spec_get
from scaling.policy.options import (
    DEFAULT_TARGET_VALUE,
    DEFAULT_WARMUP_SECONDS,
    MODES,
    target_from_wait,
)
from scaling.simulation.advisor import Advice, advise
from scaling.simulation.forecast import PredictiveSpec
from scaling.simulation.levers import Levers
from scaling.simulation.model import Workload, simulate, target_candidates
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.pricing import Prices
from scaling.simulation.report import advice_command, plot_path_check, table
from scaling.simulation.result import SimResult
from scaling.simulation.warm_pool import WarmPoolSpec
from scaling.simulation.workloads import ProcessingTimes, WorkloadFlags, workload_from_flags

DEFAULT_TARGETS = "1,2,3,5"


@dataclass(frozen=True)
class StudyFlags:
    """The command's flags, as given (``None``: not given)."""

    workload: WorkloadFlags
    mode: str
    target_value: float | None
    acceptable_wait: float | None
    processing_time: float | None
    warmup: int
    min_size: int
    max_size: int
    boot_time: int
    protection: str  # "on" | "off" (scaling.simulation.termination)
    period: int | None
    asg_name: str | None
    compare: bool
    targets: str
    recommend: bool
    seed: int
    plot: str | None
    prices: Prices = field(default_factory=Prices)  # --recommend's bill (pricing.py)
    levers: Levers = field(default_factory=Levers)  # warm pool, predictive (levers.py)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> StudyFlags:
        """From the command's options, whose keys are these fields' names; with ``fleet``,
        that fleet's policy defaults fill what the flags do not say (UnknownFleet if none
        has that name). Without: warmup DEFAULT_WARMUP_SECONDS, min 0, max 10."""
        given = {**options, **_fleet_defaults(options)}
        given["warmup"] = DEFAULT_WARMUP_SECONDS if given["warmup"] is None else given["warmup"]
        given["min_size"] = 0 if given["min_size"] is None else given["min_size"]
        given["max_size"] = 10 if given["max_size"] is None else given["max_size"]
        names = [f.name for f in fields(WorkloadFlags)]
        workload = WorkloadFlags(**{name: given[name] for name in names if name in given})
        apart = ("workload", "prices", "levers")
        own = {f.name: given[f.name] for f in fields(cls) if f.name not in apart}
        return cls(
            workload=workload,
            prices=Prices.from_options(given),
            levers=Levers.from_options(given),
            **own,
        )


def _fleet_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """What ``--fleet NAME`` sets: its policy defaults where the flags say nothing, its
    group, its source and processing time (for its history), its name."""
    name = options.get("fleet")
    if name is None:
        return {}
    fleet = fleet_get(name)
    policy = fleet.policy
    out: dict[str, Any] = {"fleet": fleet.name, "fleet_source": fleet.source}
    out["fleet_processing_time"] = policy.processing_time
    targeted = any(options[k] is not None for k in ("target_value", "processing_time"))
    if options["recommend"]:
        if options["acceptable_wait"] is None:
            out["acceptable_wait"] = policy.acceptable_wait  # the p95 goal
    elif not targeted and options["acceptable_wait"] is None:
        out["target_value"] = policy.target_value
        if policy.target_value is None:
            out["acceptable_wait"] = policy.acceptable_wait
            out["processing_time"] = policy.processing_time
    for key in ("warmup", "min_size", "max_size"):
        if options[key] is None:
            out[key] = getattr(policy, key)
    if options["asg_name"] is None:
        out["asg_name"] = fleet.asg_name
    return out


@dataclass(frozen=True)
class Recommendation:
    acceptable_wait: float
    best: SimResult
    command: str  # the install_scaling_policy line for the best result
    advice: Advice  # every candidate's bill, the choice and why


@dataclass(frozen=True)
class Study:
    seed: int
    workload: Workload
    results: list[SimResult]
    compare: bool
    plot: Path | None
    recommendation: Recommendation | None = None
    protection: str = "on"

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "seed": self.seed,
            "workload": self.workload.as_json(),
            "protection": self.protection,
        }
        chosen = self.recommendation
        if chosen is not None:
            advice = chosen.advice.as_json()
            payload.update(
                acceptable_wait_seconds=chosen.acceptable_wait,
                candidates=advice.pop("candidates"),
                recommended=advice.pop("choice"),
                command=chosen.command,
                advisor=advice,
            )
        elif len(self.results) == 1 and not self.compare:
            payload["result"] = self.results[0].as_json()
        else:
            payload["results"] = [r.as_json() for r in self.results]
        return payload

    def lines(self) -> list[tuple[str, str]]:
        """The text report: (style, line) pairs, the style being "", "warning" or "success"."""
        workload = self.workload
        lines = [
            ("", f"Workload: {workload.description} ({len(workload.arrivals)} videos)."),
            ("", f"Scale-in protection of busy instances: {self.protection}."),
        ]
        chosen = self.recommendation
        if chosen is not None:
            best = chosen.best
            return [
                *lines,
                *chosen.advice.lines(),
                ("", chosen.command),
                (
                    "",
                    f"(MinSize {best.policy.rules.min_size} and MaxSize "
                    f"{best.policy.rules.max_size} were assumed; that command does not set "
                    "them.)",
                ),
            ]
        lines.append(("", table(self.results)))
        lines.extend(
            (
                "warning",
                f"{r.policy.label}: the backlog had not drained "
                f"{r.simulated_seconds:.0f} s in; its figures cover only what finished.",
            )
            for r in self.results
            if not r.drained
        )
        return lines


def study_run(flags: StudyFlags) -> Study:
    """Check the flags, build the workload and simulate; raise SimulationError on bad input."""
    if flags.compare and flags.recommend:
        raise SimulationError("--compare and --recommend are exclusive; choose one")
    plot = plot_path_check(flags.plot)
    period = flags.period
    if period is None:
        period = metric_spec_get().period_seconds
    elif period not in ALLOWED_INTERVALS:
        allowed = ", ".join(str(i) for i in ALLOWED_INTERVALS)
        raise SimulationError(f"--period must be one of {allowed} seconds, got {period}")

    rng = random.Random(flags.seed)
    workload, processing = workload_from_flags(flags.workload, rng=rng)
    study = Study(
        seed=flags.seed,
        workload=workload,
        results=[],
        compare=flags.compare,
        plot=plot,
        protection=flags.protection,
    )
    if flags.recommend:
        return _recommend(flags, study=study, processing=processing, period=period)
    chosen: list[tuple[str, float]]  # (mode, target) for each policy to simulate
    if flags.compare:
        targets = _targets(flags.targets)
        chosen = [(mode, t) for mode in MODES for t in targets]
    else:
        chosen = [(flags.mode, _target(flags))]
    results = [
        simulate(
            workload=workload,
            policy=_policy(flags, mode, t),
            period_seconds=period,
            seed=flags.seed,
        )
        for mode, t in chosen
    ]
    return replace(study, results=results)


def _recommend(
    flags: StudyFlags, *, study: Study, processing: ProcessingTimes, period: int
) -> Study:
    wait = flags.acceptable_wait
    if wait is None:
        raise SimulationError("--recommend needs --acceptable-wait SECONDS (the p95 goal)")
    if flags.target_value is not None or flags.processing_time is not None:
        raise SimulationError(
            "--recommend chooses the target itself; drop --target-value and --processing-time"
        )
    _positive("--acceptable-wait", wait)
    candidates = target_candidates(acceptable_wait=wait, processing_mean=processing.mean_seconds)
    advice = advise(
        workload=study.workload,
        policy_for=lambda t: _policy(flags, flags.mode, t),
        # A --period given is kept; without it the advisor chooses the interval too.
        periods=ALLOWED_INTERVALS if flags.period is None else (period,),
        targets=candidates,
        acceptable_wait=wait,
        prices=flags.prices,
        # The lever flags shape the levers tried (--warm-pool-max-prepared, --warm-boot-time,
        # --predictive-buffer); predictive is tried as forecast-and-scale, which scales.
        pool=flags.levers.warm_pool or WarmPoolSpec(),
        predictive=replace(flags.levers.predictive or PredictiveSpec(), mode="forecast-and-scale"),
        seed=flags.seed,
    )
    best = advice.choice
    if best is None:
        closest = min(advice.candidates, key=lambda c: (c.result.p95_wait, c.bill.total))
        with_lever = "" if closest.lever == "none" else f" with {closest.lever}"
        raise SimulationError(
            f"no target keeps the p95 wait within {wait:g} s (best: target "
            f"{closest.target:g} at {closest.period} s{with_lever} gives "
            f"{closest.result.p95_wait:.0f} s); "
            "raise --max-size or accept a longer wait"
        )
    asg_name = flags.asg_name or metric_spec_get().asg_name
    command = advice_command(best.result, asg_name=asg_name)
    return replace(
        study,
        results=[c.result for c in advice.comparison],
        recommendation=Recommendation(
            acceptable_wait=wait, best=best.result, command=command, advice=advice
        ),
    )


def _positive(flag: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise SimulationError(f"{flag} must be a finite number above 0, got {value:g}")


def _target(flags: StudyFlags) -> float:
    value = flags.target_value
    wait = flags.acceptable_wait
    time = flags.processing_time
    if value is not None:
        if wait is not None or time is not None:
            raise SimulationError(
                "give --target-value or --acceptable-wait with --processing-time, not both"
            )
        _positive("--target-value", value)
        return float(value)
    if wait is None and time is None:
        return DEFAULT_TARGET_VALUE  # what install_scaling_policy installs without one
    if wait is None or time is None:
        raise SimulationError("--acceptable-wait and --processing-time go together")
    _positive("--acceptable-wait", wait)
    _positive("--processing-time", time)
    return float(target_from_wait(acceptable_wait=wait, processing_time=time))


def _targets(raw: str) -> list[float]:
    targets: list[float] = []
    for part in raw.split(","):
        try:
            value = float(part)
        except ValueError:
            raise SimulationError(
                f"--targets takes numbers separated by commas, got {part.strip()!r}"
            ) from None
        _positive("every --targets value", value)
        targets.append(value)
    return sorted(set(targets))


def _policy(flags: StudyFlags, mode: str, target: float) -> SimPolicy:
    return SimPolicy.build(
        mode=mode,
        target=target,
        warmup_seconds=flags.warmup,
        min_size=flags.min_size,
        max_size=flags.max_size,
        boot_seconds=flags.boot_time,
        protection=flags.protection != "off",
        warm_pool=flags.levers.warm_pool,
        predictive=flags.levers.predictive,
    )
