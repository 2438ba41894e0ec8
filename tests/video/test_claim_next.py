"""video.services.video_claim_next: the longest-waiting UPLOADED video, for a worker whose
queue is empty. The rules on any database; SKIP LOCKED, the races and the plan on
PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.factories import video_create, video_leased
from tests.video.test_claim_race import _all_at_once
from video import services
from video.models import Video, VideoStatus
from video.selectors import videos_waiting_oldest_qs
from video.services import ClaimRefusal, Lease


def _next(worker: str = "worker-1") -> Lease | None:
    return services.video_claim_next(instance_id="i-0aaaaaaaaaaaaaaa1", worker_id=worker)


def _rows() -> list[dict[str, Any]]:
    return [dict(row) for row in Video.objects.order_by("pk").values()]


@pytest.mark.django_db
def test_the_longest_waiting_first_by_status_changed_at_not_by_id() -> None:
    now = timezone.now()
    newest = video_create(at=now - timedelta(minutes=1))
    oldest = video_create(at=now - timedelta(minutes=30))
    middle = video_create(at=now - timedelta(minutes=10))

    claimed = [_next(), _next(), _next()]

    assert [lease.video_id for lease in claimed if lease] == [oldest.pk, middle.pk, newest.pk]
    assert _next() is None


@pytest.mark.django_db
def test_the_lease_is_a_claims_lease(caplog: pytest.LogCaptureFixture, settings: Any) -> None:
    """The same lease logic as video_claim: token, database expiry, attempts + 1, the ids."""
    settings.VIDEO_LEASE_SECONDS = "120"
    video = video_create()
    Video.objects.filter(pk=video.pk).update(attempts=1)  # recovered once already
    caplog.set_level(logging.INFO, logger="video.leases")

    lease = _next(worker="host:42")

    row = Video.objects.get(pk=video.pk)
    assert lease is not None
    assert (lease.video_id, lease.token, lease.expires_at, lease.attempts) == (
        video.pk,
        row.lease_token,
        row.lease_expires_at,
        2,
    )
    assert (lease.lease_seconds, lease.renew_seconds) == (120, 40)
    assert (row.status, row.lease_instance_id, row.lease_worker_id, row.attempts) == (
        VideoStatus.PROCESSING,
        "i-0aaaaaaaaaaaaaaa1",
        "host:42",
        2,
    )
    assert row.processing_started_at is not None
    assert f"Video claimed | video_id={video.pk} attempts=2" in caplog.text


@pytest.mark.django_db
def test_nothing_but_uploaded_is_ever_taken() -> None:
    video_leased(expires_in=60)
    video_leased(expires_in=-60)  # a lost lease: recovery's to put back, not claim-next's
    video_create(status=VideoStatus.PROCESSING)  # no lease at all
    video_create(status=VideoStatus.READY)
    video_create(status=VideoStatus.FAILED)
    before = _rows()

    assert _next() is None
    assert _rows() == before


@pytest.mark.django_db
def test_an_empty_table_gives_none() -> None:
    assert _next() is None


@pytest.mark.django_db
def test_a_message_that_comes_later_is_refused_taken_then_done() -> None:
    video = video_create()
    lease = _next()
    assert lease is not None

    assert (
        services.video_claim(video_id=video.pk, instance_id="i-2", worker_id="w-2")
        is ClaimRefusal.TAKEN
    )
    services.video_finish(video_id=video.pk, token=lease.token, status="READY")
    assert (
        services.video_claim(video_id=video.pk, instance_id="i-2", worker_id="w-2")
        is ClaimRefusal.DONE
    )
    assert Video.objects.get(pk=video.pk).attempts == 1


@pytest.mark.django_db
def test_a_released_video_is_waiting_again() -> None:
    video = video_create()
    lease = _next()
    assert lease is not None
    services.video_release(video_id=video.pk, token=lease.token)

    again = _next()

    assert again is not None
    assert (again.video_id, again.attempts) == (video.pk, 1)


# --- PostgreSQL: SKIP LOCKED, races, the plan -----------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_locked_row_is_skipped_not_waited_for(postgres: None) -> None:
    now = timezone.now()
    oldest = video_create(at=now - timedelta(minutes=2))
    second = video_create(at=now - timedelta(minutes=1))
    locked, release = threading.Event(), threading.Event()

    def hold_the_oldest() -> None:  # another claim-next mid-transaction, say
        try:
            with transaction.atomic():
                list(Video.objects.select_for_update().filter(pk=oldest.pk))
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_oldest)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        lease = _next()
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)

    assert lease is not None
    assert lease.video_id == second.pk
    assert took < 2.0  # it did not wait for the lock
    assert Video.objects.get(pk=oldest.pk).status == VideoStatus.UPLOADED


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_claim_next_calls_never_share_a_video(postgres: None) -> None:
    ids = [video_create().pk for _ in range(10)]

    results = _all_at_once(20, lambda i: _next(worker=f"worker-{i}"))

    leases = [r for r in results if r is not None]
    assert sorted(lease.video_id for lease in leases) == sorted(ids)
    assert results.count(None) == 10
    rows = list(Video.objects.filter(pk__in=ids).values_list("status", "attempts", "lease_token"))
    assert {(status, attempts) for status, attempts, _ in rows} == {(VideoStatus.PROCESSING, 1)}
    assert {token for _, _, token in rows} == {lease.token for lease in leases}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_claim_next_racing_the_videos_own_message_gives_one_lease(postgres: None) -> None:
    """Half the callers come through claim-next, half with the message: one winner."""
    video = video_create()

    def call(i: int) -> Any:
        if i % 2:
            return _next(worker=f"next-{i}")
        return services.video_claim(video_id=video.pk, instance_id="i-m", worker_id=f"msg-{i}")

    results = _all_at_once(20, call)

    leases = [r for r in results if isinstance(r, Lease)]
    assert len(leases) == 1, results
    assert {r for r in results if not isinstance(r, Lease)} <= {None, ClaimRefusal.TAKEN}
    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.attempts, row.lease_token) == (
        VideoStatus.PROCESSING,
        1,
        leases[0].token,
    )


@pytest.fixture
def waiting_among_finished(postgres: None) -> None:
    """20,000 finished rows and a few waiting ones, with fresh statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at)
            SELECT 'Lecture ' || g, 'READY', now(), now(), now() - g * interval '1 second'
            FROM generate_series(1, 20000) AS g
            """
        )
    for _ in range(3):
        video_create()
    video_leased()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE video_video")


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


@pytest.mark.django_db
@pytest.mark.usefixtures("waiting_among_finished")
def test_the_query_reads_the_backlog_index_not_the_table() -> None:
    queryset = videos_waiting_oldest_qs().select_for_update(skip_locked=True).values("pk")[:1]
    with transaction.atomic():
        document = json.loads(queryset.explain(format="json", analyze=True))
    nodes = list(_plan_nodes(document[0]["Plan"]))
    assert [n["Node Type"] for n in nodes if n.get("Relation Name") == "video_video"] == [
        "Index Scan"
    ]
    (scan,) = [n for n in nodes if n.get("Index Name") == "video_backlog_idx"]
    assert scan["Actual Rows"] == 1  # stops at the first waiting row
    assert [n["Node Type"] for n in nodes] == ["Limit", "LockRows", "Index Scan"]
