"""Reads of the audit trail."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from scaling.models import MetricPublication


def publications_recent(
    *, since: datetime | None = None, limit: int = 100
) -> list[MetricPublication]:
    """The newest publications first."""
    qs: QuerySet[MetricPublication] = MetricPublication.objects.order_by("-slot_start")
    if since is not None:
        qs = qs.filter(slot_start__gte=since)
    return list(qs[:limit])


def publication_latest() -> MetricPublication | None:
    return MetricPublication.objects.order_by("-slot_start").first()
