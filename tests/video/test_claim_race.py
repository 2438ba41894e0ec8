"""Concurrent claims on real PostgreSQL: the conditional UPDATE gives exactly one winner."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from tests.factories import video_create, video_leased
from video import services
from video.models import Video, VideoStatus
from video.services import ClaimRefusal, Lease

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CLAIMERS = 50


def _all_at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` in ``n`` threads, each on its own connection, released together."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        try:
            barrier.wait(timeout=30)
            return call(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


@pytest.mark.parametrize(
    ("make", "attempts_after"),
    [
        pytest.param(lambda: video_create(status=VideoStatus.UPLOADED), 1, id="uploaded"),
        pytest.param(lambda: video_leased(expires_in=-1, attempts=1), 2, id="expired-lease"),
    ],
)
def test_fifty_concurrent_claims_give_exactly_one_lease(
    postgres: None, make: Callable[[], Video], attempts_after: int
) -> None:
    video = make()

    results = _all_at_once(
        CLAIMERS,
        lambda i: services.video_claim(
            video_id=video.pk, instance_id=f"i-{i % 5}", worker_id=f"worker-{i}"
        ),
    )

    leases = [r for r in results if isinstance(r, Lease)]
    assert len(leases) == 1, results
    assert [r for r in results if not isinstance(r, Lease)] == [ClaimRefusal.TAKEN] * (CLAIMERS - 1)
    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.lease_token, row.attempts) == (
        VideoStatus.PROCESSING,
        leases[0].token,
        attempts_after,
    )
    assert row.lease_worker_id == f"worker-{results.index(leases[0])}"


def test_recovery_racing_a_renewal_leaves_one_truth(postgres: None) -> None:
    """A renewal and recoveries at once: the video is either renewed or recovered, never both."""
    video = video_leased(expires_in=-1, token="t-1")

    def call(i: int) -> Any:
        if i == 0:
            return services.video_lease_renew(video_id=video.pk, token="t-1")
        return services.videos_recover_expired(max_attempts=3)

    results = _all_at_once(10, call)

    renewed = results[0].ok
    recovered = [r for batch in results[1:] for r in batch]
    row = Video.objects.get(pk=video.pk)
    if renewed:
        assert (recovered, row.status) == ([], VideoStatus.PROCESSING)
    else:
        assert [r.video_id for r in recovered] == [video.pk]
        assert row.status == VideoStatus.UPLOADED
