from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from tests.factories import video_create, videos_create
from video.models import VideoStatus
from video.selectors import backlog_counts_qs, oldest_uploaded_qs, video_backlog_get

pytestmark = pytest.mark.django_db

# Enough finished rows that a sequential scan costs far more than the index.
FINISHED_ROWS = 20_000


def test_empty_backlog() -> None:
    backlog = video_backlog_get()
    assert (backlog.uploaded, backlog.processing, backlog.total) == (0, 0, 0)
    assert backlog.oldest_uploaded_at is None
    assert backlog.oldest_waiting_seconds is None


def test_counts_only_uploaded_and_processing() -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=7, FAILED=4)
    backlog = video_backlog_get()
    assert (backlog.uploaded, backlog.processing, backlog.total) == (3, 2, 5)


def test_oldest_is_the_oldest_uploaded_not_processing() -> None:
    now = timezone.now()
    video_create(status=VideoStatus.PROCESSING, at=now - timedelta(hours=5))
    video_create(status=VideoStatus.READY, at=now - timedelta(hours=4))
    oldest = video_create(status=VideoStatus.UPLOADED, at=now - timedelta(hours=2))
    video_create(status=VideoStatus.UPLOADED, at=now - timedelta(hours=1))
    backlog = video_backlog_get()
    assert backlog.oldest_uploaded_at == oldest.status_changed_at
    assert backlog.oldest_waiting_seconds is not None
    assert 2 * 3600 <= backlog.oldest_waiting_seconds < 2 * 3600 + 60


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


@pytest.mark.parametrize(
    ("queryset_get", "rows_read"),
    [
        pytest.param(backlog_counts_qs, 7, id="counts"),
        pytest.param(oldest_uploaded_qs, 1, id="oldest-uploaded"),
    ],
)
def test_backlog_queries_read_only_the_partial_index(
    big_table: dict[str, int], queryset_get: Any, rows_read: int
) -> None:
    nodes = _explain(queryset_get())
    on_video = [node for node in nodes if node.get("Relation Name") == "video_video"]
    index_nodes = [node for node in nodes if node.get("Index Name") == "video_backlog_idx"]
    assert [node["Node Type"] for node in on_video if node["Node Type"] == "Seq Scan"] == []
    assert len(index_nodes) == 1, [node["Node Type"] for node in nodes]
    assert index_nodes[0]["Node Type"] in {
        "Index Only Scan",
        "Index Scan",
        "Bitmap Index Scan",
    }
    # The index holds the backlog only: the scan returns the waiting rows, not
    # the 20,000 finished ones.
    assert index_nodes[0]["Actual Rows"] == rows_read


def test_backlog_on_postgres_counts_only_waiting(big_table: dict[str, int]) -> None:
    backlog = video_backlog_get()
    assert (backlog.uploaded, backlog.processing) == (
        big_table["UPLOADED"],
        big_table["PROCESSING"],
    )
    assert {row["status"]: row["n"] for row in backlog_counts_qs()} == big_table


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
