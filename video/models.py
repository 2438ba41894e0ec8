from __future__ import annotations

from collections.abc import Collection
from typing import Any, Self

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
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
    # The lease (video.services is the one place that writes these). A PROCESSING
    # video is held by the worker whose token matches until lease_expires_at; a
    # finished video keeps its token so that a repeated finish is recognised.
    processing_started_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Database defaults as well: rows inserted by plain SQL (benchmarks, bulk
    # loads) that name only the original columns stay valid.
    lease_instance_id = models.CharField(max_length=64, blank=True, default="", db_default="")
    lease_worker_id = models.CharField(max_length=128, blank=True, default="", db_default="")
    lease_token = models.CharField(max_length=64, blank=True, default="", db_default="")
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    last_error = models.TextField(blank=True, default="", db_default="")

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
            # Partial index: only PROCESSING rows, so finding the expired leases
            # costs what the videos in progress cost, not what the table costs.
            models.Index(
                fields=("lease_expires_at",),
                name="video_lease_expiry_idx",
                condition=Q(status=VideoStatus.PROCESSING),
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


class VideoRecovery(models.Model):
    """One PROCESSING video whose lease ran out, put back (UPLOADED) or given up (FAILED).

    Written by ``video.services.videos_recover_expired`` only, in the same
    transaction as the status change; read by the status surfaces.
    """

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="recoveries")
    recovered_at = models.DateTimeField(db_default=Now())
    status = models.CharField(max_length=16, choices=VideoStatus.choices)
    attempts = models.PositiveIntegerField()
    instance_id = models.CharField(max_length=64, blank=True, default="")
    worker_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        indexes = (models.Index(fields=("-recovered_at",), name="video_recovery_recent_idx"),)
        ordering = ("-recovered_at",)
        verbose_name_plural = "video recoveries"

    def __str__(self) -> str:
        return f"video {self.video_id} -> {self.status} (attempt {self.attempts})"
