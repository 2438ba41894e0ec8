from __future__ import annotations

from datetime import datetime
from itertools import count

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
