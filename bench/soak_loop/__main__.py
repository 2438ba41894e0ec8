"""``python -m bench.soak_loop [--minutes M] [--seed S] [--faults a,b] [--keep DIR]``.

Its own PostgreSQL database (academy_soak_loop on BENCH_DATABASE_URL's server, made
afresh and dropped) and a Redis database nobody holds (2..13 on SOAK_LOOP_REDIS_URL's
server, held with the test runs' key). Exit 0 on PASS, 1 on FAIL, 2 on a bad argument
or a server missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import psycopg
import redis

from bench.common import database_url
from bench.soak_loop.plan import DEFAULT_FAULTS, FAULT_KINDS, SoakLoopConfig
from devstack.localaws import LOCAL_CREDENTIALS

DB_NAME = "academy_soak_loop"
REDIS_BASE = os.environ.get("SOAK_LOOP_REDIS_URL", "redis://127.0.0.1:6379")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("SOAK_LOOP_MINUTES", "10"))
    )
    parser.add_argument(
        "--seed", type=int, default=int(os.environ.get("SOAK_LOOP_SEED", "20261204"))
    )
    parser.add_argument(
        "--faults",
        default=",".join(DEFAULT_FAULTS),
        help=f"Comma-separated kinds [all]: {', '.join(FAULT_KINDS)}.",
    )
    parser.add_argument("--drain", type=float, default=480.0, help="Drain limit, s [480].")
    parser.add_argument("--keep", type=Path, help="Logs, ledger and report in this folder.")
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args(argv)
    if not 0.5 <= args.minutes <= 180:
        parser.error("--minutes (SOAK_LOOP_MINUTES) must be from 0.5 to 180")
    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        parser.error(f"unknown --faults {unknown}: choose from {', '.join(FAULT_KINDS)}")
    if not 60 <= args.drain <= 3600:
        parser.error("--drain must be from 60 to 3600 seconds")
    args.kinds = kinds
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    config = SoakLoopConfig(
        minutes=args.minutes, seed=args.seed, faults=args.kinds, drain_seconds=args.drain
    )
    url = database_url(DB_NAME)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "academy.settings"
    os.environ.update(LOCAL_CREDENTIALS)  # the watcher's clients (moto's fixed ones)
    import django

    django.setup()
    from bench.soak_loop.run import soak_loop_run
    from bench.soak_loop.stack import redis_database_hold

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the finally blocks stop every process

    signal.signal(signal.SIGTERM, _stop)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="soak-loop-"))
    tmp.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60 + args.drain + 1800
    try:
        with redis_database_hold(REDIS_BASE, seconds=seconds) as redis_url:
            report = soak_loop_run(
                config, tmp=tmp, database_url=url, redis_url=redis_url, create_database=DB_NAME
            )
    except (redis.RedisError, psycopg.OperationalError) as exc:
        print(f"error: a server the soak needs does not answer: {exc}", file=sys.stderr)
        return 2
    finally:
        from django.db import connections

        connections.close_all()
    print(json.dumps(asdict(report), default=str) if args.json else report.table())
    for title, items in (
        ("unexplained attempts", report.unexplained_attempts),
        ("stuck", report.stuck),
        ("finished twice", report.finished_twice),
        ("busy instances scaled in", report.busy_scaled_in),
        ("made-up zeros", report.made_up_zeros),
        ("sqs zeros under a backlog", report.sqs_zeros_under_backlog),
        ("FAILED without real losses", report.failed_without_real_losses),
    ):
        if items:
            print(f"{title}: " + "; ".join(str(i) for i in items[:20]))
    print(f"logs, ledger.jsonl, faults.jsonl, report.json: {tmp}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
