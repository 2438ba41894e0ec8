from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone

from video.models import Video, VideoStatus

_sequence = count(1)


def video_create(*, status: str = VideoStatus.UPLOADED, at: datetime | None = None) -> Video:
    n = next(_sequence)
    video = Video.objects.create(title=f"Lecture {n}", status=status)
    if at is not None:
        Video.objects.filter(pk=video.pk).update(created_at=at, status_changed_at=at)
        video.refresh_from_db()
    return video


def videos_create(**counts: int) -> None:
    """videos_create(UPLOADED=3, READY=4): bulk rows with the given statuses."""
    now = timezone.now()
    Video.objects.bulk_create(
        Video(title=f"Lecture {next(_sequence)}", status=status, status_changed_at=now)
        for status, n in counts.items()
        for _ in range(n)
    )


def video_leased(
    *,
    expires_in: float = 120,
    attempts: int = 1,
    instance_id: str = "i-0aaaaaaaaaaaaaaa1",
    worker_id: str = "worker-1",
    token: str | None = None,
) -> Video:
    """A PROCESSING video held by a lease that ends ``expires_in`` seconds from the database's now.

    A negative ``expires_in`` gives a lease that has run out.
    """
    video = video_create(status=VideoStatus.PROCESSING)
    Video.objects.filter(pk=video.pk).update(
        lease_expires_at=ExpressionWrapper(
            Now() + timedelta(seconds=expires_in), output_field=DateTimeField()
        ),
        processing_started_at=Now(),
        lease_instance_id=instance_id,
        lease_worker_id=worker_id,
        lease_token=token if token is not None else f"token-{video.pk}",
        attempts=attempts,
    )
    video.refresh_from_db()
    return video
