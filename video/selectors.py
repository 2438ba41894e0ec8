"""Reads of the video table that the autoscaler depends on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Q,
    QuerySet,
)
from django.db.models.functions import Now
from django.utils import timezone

from scaling.api import Backlog, InstanceLeases, Recovery, WorkInProgress
from video.models import BACKLOG_STATUSES, Video, VideoRecovery, VideoStatus


def backlog_summary_qs() -> QuerySet[Any, Any]:
    """Rows ``{"status", "n", "oldest"}`` for the backlog statuses that have videos.

    One GROUP BY over the backlog rows only: its WHERE matches the condition of
    the partial index ``video_backlog_idx`` (status, status_changed_at), so the
    planner answers both the counts and each status's earliest
    ``status_changed_at`` from that index alone, without the rest of the table.
    """
    return (
        Video.objects.filter(status__in=BACKLOG_STATUSES)
        .order_by()
        .values("status")
        .annotate(n=Count("*"), oldest=Min("status_changed_at"))
    )


def video_backlog_get() -> Backlog:
    """Count the backlog by status, and find the oldest UPLOADED video: one query."""
    rows = {row["status"]: row for row in backlog_summary_qs()}
    uploaded = rows.get(VideoStatus.UPLOADED)
    processing = rows.get(VideoStatus.PROCESSING)
    return Backlog(
        waiting=uploaded["n"] if uploaded else 0,
        in_progress=processing["n"] if processing else 0,
        # The oldest *waiting* video: a PROCESSING one is not waiting for a worker.
        oldest_waiting_at=uploaded["oldest"] if uploaded else None,
        measured_at=timezone.now(),
    )


def videos_waiting_oldest_qs() -> QuerySet[Video, Video]:
    """UPLOADED videos, the longest waiting first (``claim-next`` takes the first).

    ``status = UPLOADED ORDER BY status_changed_at``: a range of the partial index
    ``video_backlog_idx`` (status, status_changed_at) read from its start, so
    ``LIMIT 1`` reads one entry (a tie-breaking ``pk`` would add a sort that
    reads a batch).
    """
    return Video.objects.filter(status=VideoStatus.UPLOADED).order_by("status_changed_at")


# --- leases -----------------------------------------------------------------


def lease_expired_q() -> Q:
    """A lease that no longer holds (for a PROCESSING row): ran out, or never existed.

    A PROCESSING row without a lease was made before leases existed, or by hand:
    no worker is known to hold it, so it is treated as expired.
    """
    return Q(lease_expires_at__lt=Now()) | Q(lease_expires_at__isnull=True)


def videos_lease_expired_qs(*, limit: int = 500) -> QuerySet[Video, Video]:
    """PROCESSING videos whose lease ran out, the longest expired first.

    An index range on ``video_lease_expiry_idx`` (PROCESSING rows only, by
    expiry): it reads the expired rows and stops, whatever the table holds.
    """
    return Video.objects.filter(status=VideoStatus.PROCESSING, lease_expires_at__lt=Now()).order_by(
        "lease_expires_at"
    )[:limit]


def videos_lease_missing_qs(*, limit: int = 500) -> QuerySet[Video, Video]:
    """PROCESSING videos with no lease at all (made before leases, or by hand).

    Kept apart from the expired ones so that each query is one index range
    (``lease_expires_at IS NULL`` on ``video_lease_expiry_idx``); an OR of the
    two would read every PROCESSING row.
    """
    return Video.objects.filter(
        status=VideoStatus.PROCESSING, lease_expires_at__isnull=True
    ).order_by("pk")[:limit]


def videos_processing_by_instance() -> list[InstanceLeases]:
    """PROCESSING videos grouped by the instance that holds them, by instance id."""
    rows = (
        Video.objects.filter(status=VideoStatus.PROCESSING)
        .order_by()
        .values("lease_instance_id")
        .annotate(
            n=Count("*"),
            live=Count("pk", filter=Q(lease_expires_at__gte=Now())),
            latest=Max("lease_expires_at"),
        )
        .order_by("lease_instance_id")
    )
    return [
        InstanceLeases(
            instance_id=row["lease_instance_id"],
            processing=row["n"],
            live=row["live"],
            lease_expires_at=row["latest"],
        )
        for row in rows
    ]


def video_recoveries_recent(*, limit: int = 20) -> list[Recovery]:
    """The latest recoveries, newest first (from ``VideoRecovery``, indexed by time)."""
    rows = VideoRecovery.objects.order_by("-recovered_at", "-pk").values_list(
        "video_id", "status", "attempts", "instance_id", "worker_id", "recovered_at"
    )[:limit]
    return [Recovery(*row) for row in rows]


def videos_in_progress(*, limit: int = 500) -> list[WorkInProgress]:
    """PROCESSING videos by instance, the longest running first (one query)."""
    running = ExpressionWrapper(Now() - F("processing_started_at"), output_field=DurationField())
    rows = (
        Video.objects.filter(status=VideoStatus.PROCESSING)
        .annotate(running=running)
        .order_by("lease_instance_id", "processing_started_at", "pk")
        .values_list("pk", "lease_instance_id", "running")[:limit]
    )
    return [
        WorkInProgress(
            video_id=pk,
            instance_id=instance_id,
            seconds=None if running is None else max(0, int(running.total_seconds())),
        )
        for pk, instance_id, running in rows
    ]


def video_processing_seconds_recent(*, since: datetime, limit: int) -> list[float]:
    """Upload-to-READY durations of the most recent READY videos, in seconds.

    The model stores when a video was created and when its status last changed,
    not when it entered PROCESSING. For a READY video that gives upload -> READY:
    queue wait plus processing, an upper bound on the processing time.
    """
    rows = (
        Video.objects.filter(status=VideoStatus.READY, status_changed_at__gte=since)
        .order_by("-status_changed_at")
        .values_list("created_at", "status_changed_at")[:limit]
    )
    return [
        seconds for created, changed in rows if (seconds := (changed - created).total_seconds()) > 0
    ]
