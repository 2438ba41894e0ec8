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
from dataclasses import dataclass, fields, replace
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
from scaling.simulation.model import Workload, recommend, simulate, target_candidates
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.report import install_command, plot_path_check, table
from scaling.simulation.result import SimResult
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
        own = {f.name: given[f.name] for f in fields(cls) if f.name != "workload"}
        return cls(workload=workload, **own)


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
            payload.update(
                acceptable_wait_seconds=chosen.acceptable_wait,
                candidates=[r.as_json() for r in self.results],
                recommended=chosen.best.as_json(),
                command=chosen.command,
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
            ("", table(self.results)),
        ]
        chosen = self.recommendation
        if chosen is None:
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
        best = chosen.best
        lines.append(
            (
                "success",
                f"Cheapest target with p95 wait <= {chosen.acceptable_wait:g} s: "
                f"{best.policy.rules.target:g} (p95 {best.p95_wait:.0f} s, "
                f"{best.instance_hours:.2f} instance-hours).",
            )
        )
        lines.append(("", chosen.command))
        lines.append(
            (
                "",
                f"(MinSize {best.policy.rules.min_size} and MaxSize "
                f"{best.policy.rules.max_size} were assumed; that command does not set them.)",
            )
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
    results = [
        simulate(
            workload=study.workload,
            policy=_policy(flags, flags.mode, t),
            period_seconds=period,
            seed=flags.seed,
        )
        for t in candidates
    ]
    best = recommend(results, acceptable_wait=wait)
    if best is None:
        closest = min(results, key=lambda r: r.p95_wait)
        raise SimulationError(
            f"no target keeps the p95 wait within {wait:g} s (best: target "
            f"{closest.policy.rules.target:g} gives {closest.p95_wait:.0f} s); "
            "raise --max-size or accept a longer wait"
        )
    asg_name = flags.asg_name or metric_spec_get().asg_name
    command = install_command(best, asg_name=asg_name)
    return replace(
        study,
        results=results,
        recommendation=Recommendation(acceptable_wait=wait, best=best, command=command),
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
    )
