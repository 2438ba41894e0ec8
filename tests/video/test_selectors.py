from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from tests.factories import video_create, video_leased, videos_create
from video import services
from video.models import Video, VideoStatus
from video.selectors import (
    InstanceLeases,
    backlog_summary_qs,
    video_backlog_get,
    video_recoveries_recent,
    videos_lease_expired_qs,
    videos_lease_missing_qs,
    videos_processing_by_instance,
)

pytestmark = pytest.mark.django_db

# Enough finished rows that a sequential scan costs far more than the index.
FINISHED_ROWS = 20_000


def test_empty_backlog() -> None:
    backlog = video_backlog_get()
    assert (backlog.waiting, backlog.in_progress, backlog.total) == (0, 0, 0)
    assert backlog.oldest_waiting_at is None
    assert backlog.oldest_waiting_seconds is None


def test_counts_only_uploaded_and_processing() -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=7, FAILED=4)
    backlog = video_backlog_get()
    assert (backlog.waiting, backlog.in_progress, backlog.total) == (3, 2, 5)


def test_oldest_is_the_oldest_uploaded_not_processing() -> None:
    now = timezone.now()
    video_create(status=VideoStatus.PROCESSING, at=now - timedelta(hours=5))
    video_create(status=VideoStatus.READY, at=now - timedelta(hours=4))
    oldest = video_create(status=VideoStatus.UPLOADED, at=now - timedelta(hours=2))
    video_create(status=VideoStatus.UPLOADED, at=now - timedelta(hours=1))
    backlog = video_backlog_get()
    assert backlog.oldest_waiting_at == oldest.status_changed_at
    assert backlog.oldest_waiting_seconds is not None
    assert 2 * 3600 <= backlog.oldest_waiting_seconds < 2 * 3600 + 60


def test_oldest_is_none_when_only_processing_waits() -> None:
    video_create(status=VideoStatus.PROCESSING, at=timezone.now() - timedelta(hours=5))
    backlog = video_backlog_get()
    assert (backlog.waiting, backlog.in_progress, backlog.oldest_waiting_at) == (0, 1, None)


def test_backlog_is_one_query(django_assert_num_queries: Any) -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=7)
    with django_assert_num_queries(1):
        video_backlog_get()


# --- leases -------------------------------------------------------------------------------


def test_processing_by_instance() -> None:
    video_leased(instance_id="i-a", expires_in=60)
    video_leased(instance_id="i-a", expires_in=-5)
    video_leased(instance_id="i-b", expires_in=30)
    video_create(status=VideoStatus.PROCESSING)  # no lease at all
    video_leased(instance_id="i-c", expires_in=60)
    Video.objects.filter(lease_instance_id="i-c").update(status=VideoStatus.READY)

    by_instance = videos_processing_by_instance()

    assert [(i.instance_id, i.processing, i.live) for i in by_instance] == [
        ("", 1, 0),
        ("i-a", 2, 1),
        ("i-b", 1, 1),
    ]
    assert all(isinstance(i, InstanceLeases) for i in by_instance)
    a = Video.objects.filter(lease_instance_id="i-a").order_by("-lease_expires_at").first()
    assert a is not None
    assert by_instance[1].lease_expires_at == a.lease_expires_at


def test_recoveries_recent_newest_first_and_limited() -> None:
    first = video_leased(expires_in=-300, instance_id="i-a", attempts=3)
    second = video_leased(expires_in=-10, instance_id="i-b")
    services.videos_recover_expired(max_attempts=3, limit=1)
    services.videos_recover_expired(max_attempts=3, limit=1)

    recent = video_recoveries_recent(limit=10)

    assert [(r.video_id, r.status, r.attempts, r.instance_id) for r in recent] == [
        (second.pk, "UPLOADED", 1, "i-b"),
        (first.pk, "FAILED", 3, "i-a"),
    ]
    assert recent[0].recovered_at >= recent[1].recovered_at
    assert video_recoveries_recent(limit=1) == recent[:1]


# --- PostgreSQL: the plans of the exact queries the selector runs ------------


def _plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _plan_nodes(child)


def _explain(queryset: QuerySet[Any, Any]) -> list[dict[str, Any]]:
    document = json.loads(queryset.explain(format="json", analyze=True))
    return list(_plan_nodes(document[0]["Plan"]))


@pytest.fixture
def big_table(postgres: None) -> dict[str, int]:
    """20,000 READY/FAILED rows and a few waiting ones, with fresh statistics."""
    waiting = {"UPLOADED": 4, "PROCESSING": 3}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at)
            SELECT 'Lecture ' || g,
                   CASE WHEN g %% 50 = 0 THEN 'FAILED' ELSE 'READY' END,
                   now(), now(), now() - g * interval '1 second'
            FROM generate_series(1, %s) AS g
            """,
            [FINISHED_ROWS],
        )
    videos_create(**waiting)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE video_video")
    return waiting


def _index_scans(queryset: QuerySet[Any, Any], index: str) -> list[dict[str, Any]]:
    nodes = _explain(queryset)
    on_video = [node for node in nodes if node.get("Relation Name") == "video_video"]
    assert [node["Node Type"] for node in on_video if node["Node Type"] == "Seq Scan"] == []
    return [node for node in nodes if node.get("Index Name") == index]


def test_backlog_query_reads_only_the_partial_index(big_table: dict[str, int]) -> None:
    index_nodes = _index_scans(backlog_summary_qs(), "video_backlog_idx")
    assert len(index_nodes) == 1
    # Counts and the oldest from the index alone: the table's rows are not visited
    # (an Index Only Scan; "Heap Fetches" may be non-zero until VACUUM sets the
    # visibility map, but the plan needs no column outside the index).
    assert index_nodes[0]["Node Type"] == "Index Only Scan"
    # The index holds the backlog only: the scan returns the waiting rows, not
    # the 20,000 finished ones.
    assert index_nodes[0]["Actual Rows"] == 7


def test_backlog_on_postgres_counts_only_waiting(big_table: dict[str, int]) -> None:
    backlog = video_backlog_get()
    assert (backlog.waiting, backlog.in_progress) == (
        big_table["UPLOADED"],
        big_table["PROCESSING"],
    )
    assert {row["status"]: row["n"] for row in backlog_summary_qs()} == big_table


@pytest.fixture
def leased_table(postgres: None) -> None:
    """20,000 finished rows, 30 PROCESSING with live leases, 3 expired and 1 without a lease."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at,
                                     lease_expires_at, lease_instance_id, lease_worker_id,
                                     lease_token, attempts, last_error)
            SELECT 'Lecture ' || g, 'READY', now(), now(), now(),
                   now() - g * interval '1 second', 'i-old', 'w', 't' || g, 1, ''
            FROM generate_series(1, %s) AS g
            """,
            [FINISHED_ROWS],
        )
    for n in range(30):
        video_leased(expires_in=60 + n, instance_id=f"i-{n % 4}")
    for n in range(3):
        video_leased(expires_in=-60 * (n + 1))
    video_create(status=VideoStatus.PROCESSING)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE video_video")


@pytest.mark.parametrize(
    ("queryset_get", "rows"),
    [
        pytest.param(videos_lease_expired_qs, 3, id="expired"),
        pytest.param(videos_lease_missing_qs, 1, id="no-lease"),
    ],
)
def test_recovery_queries_read_only_their_rows_of_the_lease_index(
    leased_table: None, queryset_get: Any, rows: int
) -> None:
    index_nodes = _index_scans(queryset_get(), "video_lease_expiry_idx")
    assert len(index_nodes) == 1
    (node,) = index_nodes
    # One index range: neither the 20,000 finished rows (with old expiries, but not
    # in the partial index) nor the 30 live leases are read, then thrown away.
    assert "Index Cond" in node
    assert node.get("Rows Removed by Filter", 0) == 0
    assert node.get("Rows Removed by Index Recheck", 0) == 0
    assert node["Actual Rows"] == rows
    assert len(queryset_get()) == rows


def test_lease_index_definition(postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'video_video' "
            "AND indexname = 'video_lease_expiry_idx'"
        )
        (definition,) = cursor.fetchone() or ("",)
    assert "(lease_expires_at)" in definition
    assert "WHERE ((status)::text = 'PROCESSING'::text)" in definition


def test_partial_index_definition(postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'video_video' "
            "AND indexname = 'video_backlog_idx'"
        )
        (definition,) = cursor.fetchone() or ("",)
    assert "(status, status_changed_at)" in definition
    assert "WHERE" in definition
    assert "'UPLOADED'" in definition
    assert "'PROCESSING'" in definition
