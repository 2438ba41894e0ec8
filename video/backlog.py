"""The video app's implementation of ``scaling``'s backlog port (scaling.port).

``SCALING_BACKLOG_SOURCE = "video.backlog.VideoBacklogSource"`` (academy/settings.py)
tells ``scaling`` to measure the backlog, recover leases and find busy instances
through this class. Each method is one selector or service of this app.
"""

from __future__ import annotations

from datetime import datetime

from scaling.api import Backlog, InstanceLeases, Recovery, WorkInProgress
from video import conf
from video.selectors import (
    video_backlog_get,
    video_processing_seconds_recent,
    video_recoveries_recent,
    videos_in_progress,
    videos_processing_by_instance,
)
from video.services import videos_recover_expired


class VideoBacklogSource:
    """Videos UPLOADED (waiting) and PROCESSING (in progress, under a lease)."""

    def backlog_get(self) -> Backlog:
        return video_backlog_get()

    def lease_seconds(self) -> int:
        return conf.lease_seconds()

    def leases_recover_expired(self) -> int:
        return len(videos_recover_expired(max_attempts=conf.max_attempts()))

    def leases_by_instance(self) -> list[InstanceLeases]:
        return videos_processing_by_instance()

    def work_in_progress(self, *, limit: int) -> list[WorkInProgress]:
        return videos_in_progress(limit=limit)

    def recoveries_recent(self, *, limit: int) -> list[Recovery]:
        return video_recoveries_recent(limit=limit)

    def processing_seconds_recent(self, *, since: datetime, limit: int) -> list[float]:
        return video_processing_seconds_recent(since=since, limit=limit)
