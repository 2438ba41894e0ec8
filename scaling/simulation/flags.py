"""The flags of ``simulate_scaling``, in groups: workload, policy, run.

Kept apart from the command so that each part of the simulator adds its own
group (the levers, the prices) with one call, and the command stays short.
"""

from __future__ import annotations

from typing import Any

from scaling.policy.options import DEFAULT_TARGET_VALUE, DEFAULT_WARMUP_SECONDS, MODES
from scaling.simulation.levers import lever_flags_add
from scaling.simulation.pricing import price_flags_add
from scaling.simulation.study import DEFAULT_TARGETS
from scaling.simulation.workloads import PATTERNS


def simulation_flags_add(parser: Any) -> None:
    """Every flag of simulate_scaling (argparse checks the types; study_run the rest)."""
    work = parser.add_argument_group("workload")
    work.add_argument("--pattern", choices=PATTERNS, help="A built-in workload.")
    work.add_argument(
        "--workload-csv",
        metavar="FILE",
        help="Upload times, one a line: an ISO timestamp or seconds from the start.",
    )
    work.add_argument("--rate", type=float, help="steady: uploads/min; diurnal: the peak.")
    work.add_argument(
        "--trough-rate", type=float, default=0.0, help="diurnal: the rate at midnight [0]."
    )
    work.add_argument("--count", type=int, help="spike: videos uploaded at once.")
    work.add_argument(
        "--duration",
        type=float,
        help="steady/diurnal: seconds of uploads [3600 steady, 86400 diurnal]; "
        "--fleet alone: seconds of its history [86400].",
    )
    work.add_argument(
        "--fleet", help="Replay its audit history; its policy where flags say nothing."
    )
    work.add_argument(
        "--processing-mean",
        type=float,
        help="Seconds per video. Without it: durations of recent READY videos.",
    )
    work.add_argument("--processing-spread", type=float, default=0.0, help="Std dev, s [0].")

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
        "--warmup", type=int, help=f"Instance warmup, s [{DEFAULT_WARMUP_SECONDS}]."
    )
    policy.add_argument("--min-size", type=int, help="Group MinSize [0].")
    policy.add_argument("--max-size", type=int, help="Group MaxSize [10].")
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
    policy.add_argument(
        "--protection",
        choices=("on", "off"),
        default="on",
        help="on: busy instances are protected from scale-in; off: EC2's default order [on].",
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
    price_flags_add(parser)
    lever_flags_add(parser)
