from __future__ import annotations

from collections.abc import Collection
from typing import Any, Self

from django.db import models
from django.db.models import Q
from django.utils import timezone


class VideoStatus(models.TextChoices):
    UPLOADED = "UPLOADED", "Uploaded"
    PROCESSING = "PROCESSING", "Processing"
    READY = "READY", "Ready"
    FAILED = "FAILED", "Failed"


# The statuses a video worker still has to deal with: the autoscaling backlog.
BACKLOG_STATUSES: tuple[str, ...] = (VideoStatus.UPLOADED, VideoStatus.PROCESSING)


class Video(models.Model):
    title = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=VideoStatus.choices, default=VideoStatus.UPLOADED
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = (
            # Partial index (PostgreSQL, SQLite): holds only the backlog, so
            # counting it and finding its oldest row cost what the backlog
            # costs, not what the table costs.
            models.Index(
                fields=("status", "status_changed_at"),
                name="video_backlog_idx",
                condition=Q(status__in=BACKLOG_STATUSES),
            ),
        )
        ordering = ("-created_at",)

    _loaded_status: str | None = None

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._loaded_status is not None and self.status != self._loaded_status:
            self.status_changed_at = timezone.now()
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "status_changed_at"}
        super().save(*args, **kwargs)
        self._loaded_status = self.status

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Self:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._loaded_status = instance.__dict__.get("status")
        return instance
