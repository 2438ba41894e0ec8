"""What a simulation shows: the table, the install command line, the chart."""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import Any

from scaling.simulation.model import Workload
from scaling.simulation.policy import SimulationError
from scaling.simulation.result import SimResult

TABLE_HEADER = (
    "policy",
    "p50 wait",
    "p95 wait",
    "max wait",
    "peak",
    "inst-hours",
    "rework h",
    "restarts",
    "actions",
)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def table(results: list[SimResult]) -> str:
    rows = [TABLE_HEADER] + [
        (
            r.policy.label + ("" if r.drained else " *"),
            _duration(r.p50_wait),
            _duration(r.p95_wait),
            _duration(r.max_wait),
            str(r.peak_instances),
            f"{r.instance_hours:.2f}",
            f"{r.rework_hours:.2f}",
            str(r.restarted),
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


ADVICE_HEADER = (
    "interval",
    "target",
    "levers",
    "p95 wait",
    "instance $",
    "volumes/pool $",
    "CloudWatch $",
    "total $",
    "",
)


def _cells(rows: list[tuple[str, ...]], *, left: int = 1) -> str:
    """Rows as columns: the first ``left`` cells left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def advice_table(candidates: list[Any], *, chosen: Any, wait: float) -> str:
    """What the advisor tried (``scaling.simulation.advisor.Candidate``s): one row each,
    "chosen" on the choice, "p95 > wait" or "not drained" on those that fail."""
    rows: list[tuple[str, ...]] = [ADVICE_HEADER]
    for c in candidates:
        r, b = c.result, c.bill
        if not r.drained:
            mark = "not drained"
        elif r.p95_wait > wait:
            mark = "p95 > wait"
        else:
            mark = "chosen" if c is chosen else ""
        rows.append(
            (
                f"{r.period_seconds} s",
                f"{r.policy.rules.target:g}",
                "-" if c.lever == "none" else c.lever,
                _duration(r.p95_wait),
                f"{b.instance:.2f}",
                f"{b.volumes + b.pool:.2f}",
                f"{b.cloudwatch:.2f}",
                f"{b.total:.2f}",
                mark,
            )
        )
    return _cells(rows, left=3)


def install_command(result: SimResult, *, asg_name: str) -> str:
    """The install_scaling_policy command line that installs this result's policy."""
    p = result.policy
    parts = [
        "python",
        "manage.py",
        "install_scaling_policy",
        "--mode",
        p.rules.mode,
        "--target-value",
        f"{p.rules.target:g}",
        "--warmup",
        str(p.warmup_seconds),
        "--asg-name",
        asg_name,
    ]
    pool = p.warm_pool
    if pool is not None:  # the installer takes the simulator's warm-pool flags
        parts += ["--warm-pool", "--warm-pool-min-size", str(pool.min_size)]
        if pool.max_prepared is not None:
            parts += ["--warm-pool-max-prepared", str(pool.max_prepared)]
        parts += ["--warm-pool-state", pool.state]
        parts += ["--warm-pool-reuse", "on" if pool.reuse_on_scale_in else "off"]
    predictive = p.predictive
    if predictive is not None:
        parts += ["--predictive", predictive.mode]
        parts += ["--predictive-buffer", str(predictive.scheduling_buffer_seconds)]
    return " ".join(shlex.quote(part) for part in parts)


def advice_command(result: SimResult, *, asg_name: str) -> str:
    """install_command with the run's publishing interval (the publisher must publish at
    it: SCALING_PUBLISH_INTERVAL_SECONDS) and its warm pool and predictive flags."""
    line = install_command(result, asg_name=asg_name)
    p = result.policy
    more: list[str] = []
    pool = p.warm_pool
    if pool is not None and "--warm-pool" not in line:
        more += ["--warm-pool", "--warm-pool-min-size", str(pool.min_size)]
        if pool.max_prepared is not None:
            more += ["--warm-pool-max-prepared", str(pool.max_prepared)]
        more += ["--warm-pool-state", pool.state]
        more += ["--warm-pool-reuse", "on" if pool.reuse_on_scale_in else "off"]
    predictive = p.predictive
    if predictive is not None and "--predictive" not in line:
        more += ["--predictive", predictive.mode]
        more += ["--predictive-buffer", str(predictive.scheduling_buffer_seconds)]
    interval = f"SCALING_PUBLISH_INTERVAL_SECONDS={result.period_seconds}"
    return " ".join([interval, line, *(shlex.quote(part) for part in more)])


def plot_write(path: Path, *, results: list[SimResult], workload: Workload) -> None:
    try:
        # Imported here: only --plot needs it, and it is an optional extra.
        import matplotlib
    except ImportError:
        raise SimulationError("--plot needs matplotlib: pip install 'academy[plot]'") from None
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
        desired = [t.desired for t in result.timeline]
        in_service = [t.in_service for t in result.timeline]
        for values, color, linestyle, label in (
            (desired, "tab:red", "-", "desired"),
            (in_service, "tab:blue", "--", "in service"),
        ):
            right.step(minutes, values, where="post", color=color, linestyle=linestyle, label=label)
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
        raise SimulationError(f"--plot: cannot write {path}: {exc.__class__.__name__}") from None
    finally:
        plt.close(fig)


def plot_path_check(raw: str | None) -> Path | None:
    """The --plot file, checked before anything runs; None without --plot."""
    if raw is None:
        return None
    path = Path(raw)
    if path.suffix.lower() != ".png":
        raise SimulationError(f"--plot writes PNG: give a file name ending in .png, got {raw}")
    if not path.parent.is_dir():
        raise SimulationError(f"--plot: directory {path.parent} does not exist")
    return path
