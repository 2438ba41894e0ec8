"""`make soak-loop`: the whole local loop under bursts of uploads and seeded faults.

The loop as `make run` has it (moto's server as AWS, gunicorn, celery worker and beat,
the control plane playing target tracking, the fleet starting a real video worker per
booted instance), every role's path to PostgreSQL, Redis and AWS through a fault proxy
(``stack``). From the seed (``plan``): bursts of uploads, and one fault at a time
(``inject``): worker SIGKILL and SIGTERM, the API frozen shorter and longer than a
lease, PostgreSQL refused and hanging for the API, the tick and the workers, Redis
refused, the AWS endpoint refused, erroring (500) and hanging, the job queue purged.
Then a drain, and a ledger per video from the database and the logs (``ledger``) with
one verdict table (``report``). ``python -m bench.soak_loop --minutes 30 --seed 7``;
the rule for an explained attempt is ``ledger.loss_explain`` (docs/benchmarks.md).
"""

from bench.soak_loop.plan import DEFAULT_FAULTS, FAULT_KINDS, SoakLoopConfig, plan_draw
from bench.soak_loop.report import SoakLoopReport
from bench.soak_loop.run import soak_loop_run

__all__ = [
    "DEFAULT_FAULTS",
    "FAULT_KINDS",
    "SoakLoopConfig",
    "SoakLoopReport",
    "plan_draw",
    "soak_loop_run",
]
