from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class Encode(models.Model):
    """One lecture recording to encode; status is an integer code."""

    class Status(models.IntegerChoices):
        QUEUED = 10
        ENCODING = 20
        DONE = 30
        BROKEN = 90

    lecture = models.CharField(max_length=200)
    status = models.PositiveSmallIntegerField(choices=Status.choices, default=Status.QUEUED)
    queued_at = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[Encode]] = models.Manager()

    class Meta:
        db_table = "hall_encode_jobs"

    def __str__(self) -> str:
        return f"{self.lecture} ({self.Status(self.status).label})"
