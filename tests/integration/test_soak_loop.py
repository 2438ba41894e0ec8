"""The short loop soak (`make soak-loop` runs the long one): the whole local loop with a
burst of uploads while a worker is SIGKILLed and SIGTERMed, the API frozen longer than a
lease and PostgreSQL hangs for the API; then the verdict, each of its zero counts.

The soak runs on this test's own database (the loop's processes reach it through the
soak's fault proxies) and one Redis database this test holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak_loop import SoakLoopConfig, soak_loop_run
from devstack.localaws import LOCAL_CREDENTIALS
from tests.support.stack import database_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULTS = ("worker-kill", "worker-term", "api-freeze-long", "pg-web-hang")


def test_short_loop_soak_passes(
    transactional_db: None,
    postgres: None,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)  # the watcher's clients of moto
    config = SoakLoopConfig(
        minutes=1.0,
        seed=4,
        faults=FAULTS,
        burst_sizes=(9, 9),
        burst_gaps=(600.0, 600.0),  # one burst
        fault_gaps=(2.0, 4.0),
        first_fault_after=12.0,
        drain_seconds=240.0,
    )
    report = soak_loop_run(config, tmp=tmp_path, database_url=database_url(), redis_url=redis_url)

    print(report.table())
    assert report.videos == 9
    assert report.faults, "no fault was injected"
    assert report.stuck == []
    assert report.finished_twice == []
    assert report.unexplained_attempts == []
    assert report.busy_scaled_in == []
    assert report.group_at_minimum
    assert report.duplicates == 0
    assert report.made_up_zeros == []
    assert report.failed_without_real_losses == []
    assert report.exited == []
    assert report.verdict == "PASS"
