"""The short soak (about two minutes) that `make test` runs; `make soak` runs the long one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import soak_run
from tests.conftest import redis_base_url

# One worker runs the loop and the soak one after the other (tests/conftest.py).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.xdist_group("cpu_heavy_scenarios"),
]


def test_short_soak_holds_the_invariants(postgres: None, redis_url: str, tmp_path: Path) -> None:
    base = redis_base_url()
    assert base is not None
    report = soak_run(
        minutes=2,
        seed=20261126,
        load_rate=100,
        keep=tmp_path,
        redis_url=redis_url,
    )

    print(report.table())
    assert report.slots == 12
    assert {key.split()[0] for key in report.faults} == {"postgres", "redis", "aws"}
    assert (report.duplicates, report.made_up_zeros, report.wrong_values) == (0, 0, 0)
    assert report.audit_rows_lost == 0, report.lost_slots
    assert report.missed_with_working_path == 0, report.missed_slots
    assert report.published_db + report.published_sqs >= 6
    assert report.endpoint["requests"] > 1000
    assert report.ok
