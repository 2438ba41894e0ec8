from __future__ import annotations

import json
import math
import random
import shlex
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scaling.conf import ALLOWED_INTERVALS
from scaling.metric_spec import metric_spec_get
from scaling.policy.install import DEFAULT_TARGET_VALUE, DEFAULT_WARMUP_SECONDS
from scaling.simulation.model import (
    HISTORY_DAYS,
    HISTORY_MIN_VIDEOS,
    MODES,
    PATTERNS,
    ProcessingTimes,
    SimPolicy,
    SimResult,
    SimulationError,
    Workload,
    arrivals_diurnal,
    arrivals_parse,
    arrivals_spike,
    arrivals_steady,
    processing_history_seconds,
    recommend,
    simulate,
    target_candidates,
    workload_build,
)

DEFAULT_TARGETS = "1,2,3,5"
TABLE_HEADER = (
    "policy",
    "p50 wait",
    "p95 wait",
    "max wait",
    "peak",
    "inst-hours",
    "actions",
)


class Command(BaseCommand):
    help = (
        "Replay a workload against a target tracking policy, one metric period at a "
        "time, and report waits, instances and cost. Nothing is sent to AWS."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # A bad flag or value raises CommandError (one line, see run_from_argv)
        # instead of printing argparse's usage block.
        parser.called_from_command_line = False
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as exc:
            # Only parse errors get here: Django handles those raised by handle().
            self.stderr.write(f"CommandError: {exc}")
            sys.exit(exc.returncode)

    def add_arguments(self, parser: CommandParser) -> None:
        work = parser.add_argument_group("workload")
        work.add_argument("--pattern", choices=PATTERNS, help="A built-in workload.")
        work.add_argument(
            "--workload-csv",
            metavar="FILE",
            help="Upload times, one a line: an ISO timestamp or seconds from the start.",
        )
        work.add_argument(
            "--rate", type=float, help="steady: uploads a minute; diurnal: the peak rate."
        )
        work.add_argument(
            "--trough-rate", type=float, default=0.0, help="diurnal: the rate at midnight [0]."
        )
        work.add_argument("--count", type=int, help="spike: videos uploaded at once.")
        work.add_argument(
            "--duration",
            type=float,
            help="steady/diurnal: seconds of uploads [3600 steady, 86400 diurnal].",
        )
        work.add_argument(
            "--processing-mean",
            type=float,
            help="Seconds per video. Without it: durations of recent READY videos.",
        )
        work.add_argument(
            "--processing-spread",
            type=float,
            default=0.0,
            help="Standard deviation, seconds [0].",
        )

        policy = parser.add_argument_group("policy (as install_scaling_policy takes it)")
        policy.add_argument("--mode", choices=MODES, default="per-instance")
        policy.add_argument(
            "--target-value",
            type=float,
            help=f"The policy's TargetValue [{DEFAULT_TARGET_VALUE:g}, as install_scaling_policy].",
        )
        policy.add_argument(
            "--acceptable-wait",
            type=float,
            metavar="SECONDS",
            help="With --processing-time: target = wait / time. With --recommend: the p95 goal.",
        )
        policy.add_argument(
            "--processing-time",
            type=float,
            metavar="SECONDS",
            help="Average processing time used to derive the target.",
        )
        policy.add_argument(
            "--warmup",
            type=int,
            default=DEFAULT_WARMUP_SECONDS,
            help=f"Instance warmup, s [{DEFAULT_WARMUP_SECONDS}].",
        )
        policy.add_argument("--min-size", type=int, default=0, help="Group MinSize [0].")
        policy.add_argument("--max-size", type=int, default=10, help="Group MaxSize [10].")
        policy.add_argument(
            "--boot-time",
            type=int,
            default=60,
            help="Seconds from launch until a worker is InService and takes videos [60].",
        )
        policy.add_argument(
            "--period",
            type=int,
            help="Metric period, s [SCALING_PUBLISH_INTERVAL_SECONDS].",
        )
        policy.add_argument(
            "--asg-name", help="Group name for the printed install command [SCALING_ASG_NAME]."
        )

        run = parser.add_argument_group("run")
        run.add_argument("--compare", action="store_true", help="Both modes, several targets.")
        run.add_argument(
            "--targets",
            default=DEFAULT_TARGETS,
            help=f"Targets for --compare, comma-separated [{DEFAULT_TARGETS}].",
        )
        run.add_argument(
            "--recommend",
            action="store_true",
            help="Cheapest target whose p95 wait meets --acceptable-wait.",
        )
        run.add_argument("--seed", type=int, default=0, help="Random seed [0].")
        run.add_argument("--json", action="store_true", help="Print the result as JSON.")
        run.add_argument("--plot", metavar="FILE.png", help="Write a chart of the run(s).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(options)
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc

    def _handle(self, options: dict[str, Any]) -> None:
        if options["compare"] and options["recommend"]:
            raise CommandError("--compare and --recommend are exclusive; choose one")
        plot = _plot_path(options["plot"])
        period = options["period"]
        if period is None:
            period = metric_spec_get().period_seconds
        elif period not in ALLOWED_INTERVALS:
            allowed = ", ".join(str(i) for i in ALLOWED_INTERVALS)
            raise CommandError(f"--period must be one of {allowed} seconds, got {period}")

        rng = random.Random(options["seed"])
        arrivals, description = _arrivals(options, rng=rng)
        processing = _processing(options)
        workload = workload_build(
            arrivals=arrivals, processing=processing, rng=rng, description=description
        )

        if options["recommend"]:
            results = self._recommend(
                options, workload=workload, processing=processing, period=period
            )
        elif options["compare"]:
            targets = _targets(options["targets"])
            results = [
                simulate(workload=workload, policy=_policy(options, mode, t), period_seconds=period)
                for mode in MODES
                for t in targets
            ]
            self._report(options, workload=workload, results=results)
        else:
            target = _target(options)
            results = [
                simulate(
                    workload=workload,
                    policy=_policy(options, options["mode"], target),
                    period_seconds=period,
                )
            ]
            self._report(options, workload=workload, results=results)
        if plot is not None:
            _plot_write(plot, results=results, workload=workload)
            if not options["json"]:
                self.stdout.write(f"Chart written to {plot}.")

    def _report(
        self, options: dict[str, Any], *, workload: Workload, results: list[SimResult]
    ) -> None:
        if options["json"]:
            payload: dict[str, Any] = {"seed": options["seed"], "workload": workload.as_json()}
            if len(results) == 1 and not options["compare"]:
                payload["result"] = results[0].as_json()
            else:
                payload["results"] = [r.as_json() for r in results]
            self.stdout.write(json.dumps(payload, sort_keys=True))
            return
        self.stdout.write(f"Workload: {workload.description} ({len(workload.arrivals)} videos).")
        self.stdout.write(_table(results))
        for r in results:
            if not r.drained:
                self.stdout.write(
                    self.style.WARNING(
                        f"{r.policy.label}: the backlog had not drained "
                        f"{r.simulated_seconds:.0f} s in; its figures cover only what finished."
                    )
                )

    def _recommend(
        self,
        options: dict[str, Any],
        *,
        workload: Workload,
        processing: ProcessingTimes,
        period: int,
    ) -> list[SimResult]:
        wait = options["acceptable_wait"]
        if wait is None:
            raise CommandError("--recommend needs --acceptable-wait SECONDS (the p95 goal)")
        if options["target_value"] is not None or options["processing_time"] is not None:
            raise CommandError(
                "--recommend chooses the target itself; drop --target-value and --processing-time"
            )
        _positive("--acceptable-wait", wait)
        candidates = target_candidates(
            acceptable_wait=wait, processing_mean=processing.mean_seconds
        )
        results = [
            simulate(
                workload=workload,
                policy=_policy(options, options["mode"], t),
                period_seconds=period,
            )
            for t in candidates
        ]
        best = recommend(results, acceptable_wait=wait)
        if best is None:
            closest = min(results, key=lambda r: r.p95_wait)
            raise CommandError(
                f"no target keeps the p95 wait within {wait:g} s (best: target "
                f"{closest.policy.target:g} gives {closest.p95_wait:.0f} s); "
                "raise --max-size or accept a longer wait"
            )
        command = _install_command(options, best)
        if options["json"]:
            payload = {
                "seed": options["seed"],
                "workload": workload.as_json(),
                "acceptable_wait_seconds": wait,
                "candidates": [r.as_json() for r in results],
                "recommended": best.as_json(),
                "command": command,
            }
            self.stdout.write(json.dumps(payload, sort_keys=True))
            return results
        self.stdout.write(f"Workload: {workload.description} ({len(workload.arrivals)} videos).")
        self.stdout.write(_table(results))
        self.stdout.write(
            self.style.SUCCESS(
                f"Cheapest target with p95 wait <= {wait:g} s: {best.policy.target:g} "
                f"(p95 {best.p95_wait:.0f} s, {best.instance_hours:.2f} instance-hours)."
            )
        )
        self.stdout.write(command)
        self.stdout.write(
            f"(MinSize {best.policy.min_size} and MaxSize {best.policy.max_size} were assumed; "
            "that command does not set them.)"
        )
        return results


# --------------------------------------------------------------------------- argument parsing


def _positive(flag: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise CommandError(f"{flag} must be a finite number above 0, got {value:g}")


def _target(options: dict[str, Any]) -> float:
    value = options["target_value"]
    wait = options["acceptable_wait"]
    time = options["processing_time"]
    if value is not None:
        if wait is not None or time is not None:
            raise CommandError(
                "give --target-value or --acceptable-wait with --processing-time, not both"
            )
        _positive("--target-value", value)
        return float(value)
    if wait is None and time is None:
        return DEFAULT_TARGET_VALUE  # what install_scaling_policy installs without one
    if wait is None or time is None:
        raise CommandError("--acceptable-wait and --processing-time go together")
    _positive("--acceptable-wait", wait)
    _positive("--processing-time", time)
    return float(wait / time)


def _targets(raw: str) -> list[float]:
    targets: list[float] = []
    for part in raw.split(","):
        try:
            value = float(part)
        except ValueError:
            raise CommandError(
                f"--targets takes numbers separated by commas, got {part.strip()!r}"
            ) from None
        _positive("every --targets value", value)
        targets.append(value)
    return sorted(set(targets))


def _policy(options: dict[str, Any], mode: str, target: float) -> SimPolicy:
    return SimPolicy(
        mode=mode,
        target=target,
        warmup_seconds=options["warmup"],
        min_size=options["min_size"],
        max_size=options["max_size"],
        boot_seconds=options["boot_time"],
    )


def _processing(options: dict[str, Any]) -> ProcessingTimes:
    mean = options["processing_mean"]
    spread = options["processing_spread"]
    if mean is not None:
        return ProcessingTimes(mean_seconds=mean, spread_seconds=spread)
    if spread:
        raise CommandError("--processing-spread needs --processing-mean")
    history = processing_history_seconds()
    if len(history) < HISTORY_MIN_VIDEOS:
        raise CommandError(
            f"only {len(history)} READY videos in the last {HISTORY_DAYS} days "
            f"(need {HISTORY_MIN_VIDEOS}) to learn processing times: pass --processing-mean SECONDS"
        )
    return ProcessingTimes.from_samples(history)


def _arrivals(options: dict[str, Any], *, rng: random.Random) -> tuple[list[float], str]:
    pattern = options["pattern"]
    csv_name = options["workload_csv"]
    if pattern and csv_name:
        raise CommandError("--pattern and --workload-csv are exclusive; choose one")
    if not pattern and not csv_name:
        raise CommandError(
            f"give a workload: --pattern {'|'.join(PATTERNS)} or --workload-csv FILE"
        )
    duration = options["duration"]
    if csv_name:
        path = Path(csv_name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(
                f"cannot read --workload-csv {csv_name}: {exc.__class__.__name__}"
            ) from None
        arrivals = arrivals_parse(text.splitlines(), source=csv_name)
        description = f"{csv_name}"
    elif pattern == "spike":
        count = options["count"]
        if count is None:
            raise CommandError("--pattern spike needs --count N")
        arrivals = arrivals_spike(count=count)
        description = f"spike of {count} videos at 60 s"
    else:
        rate = options["rate"]
        if rate is None:
            raise CommandError(f"--pattern {pattern} needs --rate PER_MINUTE")
        if pattern == "steady":
            duration = 3600.0 if duration is None else duration
            arrivals = arrivals_steady(rate_per_minute=rate, duration_seconds=duration)
            description = f"steady {rate:g}/min for {duration:g} s"
        else:
            duration = 86_400.0 if duration is None else duration
            trough = options["trough_rate"]
            arrivals = arrivals_diurnal(
                peak_per_minute=rate,
                trough_per_minute=trough,
                duration_seconds=duration,
                rng=rng,
            )
            description = f"diurnal {trough:g}..{rate:g}/min for {duration:g} s"
    return arrivals, description


def _plot_path(raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw)
    if path.suffix.lower() != ".png":
        raise CommandError(f"--plot writes PNG: give a file name ending in .png, got {raw}")
    if not path.parent.is_dir():
        raise CommandError(f"--plot: directory {path.parent} does not exist")
    return path


# --------------------------------------------------------------------------- output


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _table(results: list[SimResult]) -> str:
    rows = [TABLE_HEADER] + [
        (
            r.policy.label + ("" if r.drained else " *"),
            _duration(r.p50_wait),
            _duration(r.p95_wait),
            _duration(r.max_wait),
            str(r.peak_instances),
            f"{r.instance_hours:.2f}",
            str(r.scaling_actions),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _install_command(options: dict[str, Any], result: SimResult) -> str:
    asg = options["asg_name"] or metric_spec_get().asg_name
    p = result.policy
    parts = [
        "python",
        "manage.py",
        "install_scaling_policy",
        "--mode",
        p.mode,
        "--target-value",
        f"{p.target:g}",
        "--warmup",
        str(p.warmup_seconds),
        "--asg-name",
        asg,
    ]
    return " ".join(shlex.quote(part) for part in parts)


def _plot_write(path: Path, *, results: list[SimResult], workload: Workload) -> None:
    try:
        # Imported here: only --plot needs it, and it is an optional extra.
        import matplotlib
    except ImportError:
        raise CommandError("--plot needs matplotlib: pip install 'academy[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    count = len(results)
    top_instances = max(1, *(r.peak_instances for r in results)) * 1.1
    cols = 1 if count == 1 else 2
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(6.4 * cols, 2.6 * rows + 0.6),
        sharex=True,
        squeeze=False,
    )
    for index, result in enumerate(results):
        ax = axes[index % rows][index // rows]
        minutes = [tick.seconds / 60 for tick in result.timeline]
        ax.plot(minutes, [t.backlog for t in result.timeline], color="0.55", label="backlog")
        ax.set_ylabel("videos")
        right = ax.twinx()
        right.step(
            minutes,
            [t.desired for t in result.timeline],
            where="post",
            color="tab:red",
            label="desired",
        )
        right.step(
            minutes,
            [t.in_service for t in result.timeline],
            where="post",
            color="tab:blue",
            linestyle="--",
            label="in service",
        )
        right.set_ylabel("instances")
        # One instance scale for every panel, so that panels compare at a glance.
        right.set_ylim(bottom=0, top=top_instances)
        ax.set_ylim(bottom=0)
        ax.set_title(
            f"{result.policy.label}: p95 {_duration(result.p95_wait)}, "
            f"{result.instance_hours:.1f} inst-h",
            fontsize=9,
        )
        if index == 0:
            handles = ax.get_legend_handles_labels()
            more = right.get_legend_handles_labels()
            ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper right")
    for index in range(count, rows * cols):
        axes[index % rows][index // rows].set_visible(False)
    for col in range(cols):
        axes[rows - 1][col].set_xlabel("minutes")
    fig.suptitle(workload.description, fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=72)
    except OSError as exc:
        raise CommandError(f"--plot: cannot write {path}: {exc.__class__.__name__}") from None
    finally:
        plt.close(fig)
