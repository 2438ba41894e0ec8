"""The live local loop against the simulator: one burst through both, both timelines.

Starts the whole loop on this machine (a PostgreSQL database of its own,
``academy_bench_loop``; Redis db 11 or ``LOOP_REDIS_URL``; moto's server;
gunicorn, celery worker and beat, ``devstack.controlplane`` and
``devstack.fleet`` with real ``video_worker`` processes), installs the policy
with ``install_scaling_policy``, uploads ``--videos`` videos just before a slot
boundary, and watches until every video is done and the group is back at 0. Then
it runs ``simulate_scaling``'s model on the same burst with the same policy, boot
time and processing time, and prints the two timelines and five figures side by
side: time to the first scale-out, peak instances, instance-hours, p95 wait,
time back to zero. ``make bench-loop`` runs the 30-video burst and the spike of 120.
Not part of ``make test`` (the short version is tests/integration/test_local_loop.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import redis

from academy.celery import beat_argv, worker_argv
from bench.common import bench_stack
from bench.soak import Processes
from devstack.localaws import port_free_get, port_wait

DB_NAME = "academy_bench_loop"
REDIS_URL = os.environ.get("LOOP_REDIS_URL", "redis://127.0.0.1:6379/11")
HELD_KEY = "academy:test-run-holds-this-database"  # tests/support/stack.py
ASG = "academy-video-worker-asg"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--videos", type=int, default=30, help="Videos in the burst [30].")
    parser.add_argument("--processing", type=int, default=20, help="Seconds per video [20].")
    parser.add_argument("--target", type=float, default=3.0, help="Per-instance target [3].")
    parser.add_argument("--warmup", type=int, default=10, help="Installed warmup, s [10].")
    parser.add_argument("--boot", type=int, default=5, help="DEVSTACK_BOOT_SECONDS [5].")
    parser.add_argument("--interval", type=int, default=10, help="Slot seconds [10].")
    parser.add_argument("--limit", type=int, default=1200, help="Give up after, s [1200].")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args(argv)
    for name, least, most in (
        ("videos", 1, 1000),
        ("processing", 1, 3600),
        ("warmup", 0, 3600),
        ("boot", 0, 600),
        ("interval", 10, 60),
        ("limit", 60, 7200),
    ):
        if not least <= getattr(args, name) <= most:
            parser.error(f"--{name} must be from {least} to {most}, got {getattr(args, name)}")
    if args.target <= 0:
        parser.error(f"--target must be above 0, got {args.target:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    store = redis.Redis.from_url(REDIS_URL)
    try:
        if store.exists(HELD_KEY):
            print(f"error: {REDIS_URL} is held by a test run: set LOOP_REDIS_URL", file=sys.stderr)
            return 2
        store.flushdb()
    except redis.RedisError as exc:
        print(f"error: Redis at {REDIS_URL} does not answer ({exc}): start it", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="loop-"))
    timeline = tmp / "timeline.jsonl"
    port = port_free_get()
    env = {
        "CELERY_BROKER_URL": REDIS_URL,
        "SCALING_STATE_URL": REDIS_URL,
        "SCALING_PUBLISH_INTERVAL_SECONDS": str(args.interval),
        "INTERNAL_API_KEY": "bench-loop-internal-0123456789",
        "WORKER_API_KEY": "bench-loop-worker-0123456789ab",
        "VIDEO_LEASE_SECONDS": str(max(6, args.interval)),
        "VIDEO_WORKER_HOLD_SECONDS": str(args.processing),
        "DEVSTACK_BOOT_SECONDS": str(args.boot),
        "DEVSTACK_TIMELINE_FILE": str(timeline),
        "DEVSTACK_API_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "true",
    }
    processes = Processes(tmp)
    try:
        with bench_stack(DB_NAME, tmp, rows=0, waiting=0, env=env) as stack_env:
            figures = _run(args, stack_env, processes, port=port, timeline=timeline)
    finally:
        processes.stop_all()
        store.flushdb()
    if args.json:
        print(json.dumps(figures, indent=2))
    print(f"logs: {tmp}", file=sys.stderr)
    return 0 if figures["settled"] else 1


def _run(
    args: argparse.Namespace,
    env: dict[str, str],
    processes: Processes,
    *,
    port: int,
    timeline: Path,
) -> dict[str, object]:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "academy.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from devstack.localaws import local_client
    from devstack.loop import (
        LoopWatch,
        burst_upload,
        burst_watch,
        comparison_rows,
        comparison_table,
        simulated,
        slot_zero,
        timelines_table,
    )
    from scaling.publishing.schedule import schedule_ensure
    from scaling.simulation.policy import SimPolicy

    schedule_ensure()
    call_command(
        "install_scaling_policy", "--target-value", f"{args.target:g}", "--warmup", str(args.warmup)
    )
    processes.start("worker", worker_argv("loop-worker"), env)
    processes.start("beat", beat_argv(), env)
    gunicorn = ["-m", "gunicorn", "academy.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    processes.start("api", [*gunicorn, "--workers", "2", "--threads", "4"], env)
    port_wait("127.0.0.1", port, timeout=30)
    processes.start("control", ["-m", "devstack.controlplane"], env)
    processes.start("fleet", ["-m", "devstack.fleet"], env)
    region, endpoint = env["AWS_REGION"], env["AWS_ENDPOINT_URL"]
    ids, uploaded_at = burst_upload(args.videos, interval=args.interval)
    watch = LoopWatch(
        autoscaling=local_client("autoscaling", endpoint, region),
        ec2=local_client("ec2", endpoint, region),
        asg_name=ASG,
        boot_seconds=args.boot,
        video_ids=ids,
        zero=slot_zero(uploaded_at, args.interval),
        timeline=timeline,
    )
    settled = burst_watch(watch, limit=args.limit)
    live = watch.result()
    policy = SimPolicy.build(
        mode="per-instance",
        target=args.target,
        warmup_seconds=args.warmup,
        max_size=10,
        boot_seconds=args.boot,
    )
    sims = [
        simulated(
            videos=args.videos,
            processing_seconds=args.processing,
            policy=policy,
            interval=args.interval,
        )
    ]
    if live.boot_measured is not None:
        # The model given the boot the system showed: DEVSTACK_BOOT_SECONDS plus the
        # worker process's own start (several start at once on a small machine).
        measured = replace(policy, boot_seconds=round(live.boot_measured))
        sims.append(
            simulated(
                videos=args.videos,
                processing_seconds=args.processing,
                policy=measured,
                interval=args.interval,
            )
        )
    print(
        f"burst of {args.videos} x {args.processing} s, per-instance target {args.target:g}, "
        f"warmup {args.warmup} s, boot {args.boot} s, {args.interval} s slots"
    )
    print(timelines_table(live, sims[-1]))
    print()
    print(comparison_table(live, sims))
    labels = [f"{k} (boot {s.policy.boot_seconds} s)" for s in sims for k in ("sim", "diff")]
    return {
        "settled": settled,
        "busy_terminated": live.busy_terminated,
        "boot_measured_seconds": live.boot_measured,
        "figures": [
            dict(zip(("figure", "live", *labels), row, strict=True))
            for row in comparison_rows(live, sims)
        ],
        "samples": [asdict(s) for s in live.samples[-1:]],
    }


if __name__ == "__main__":
    sys.exit(main())
