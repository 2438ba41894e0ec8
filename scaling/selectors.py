"""Reads of the audit trail, one fleet at a time (scaling.fleets; rows from before
fleets belong to ``video``)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from scaling.fleets import DEFAULT_FLEET
from scaling.models import MetricPublication


def publications_recent(
    *, since: datetime | None = None, limit: int = 100, fleet: str | None = DEFAULT_FLEET
) -> list[MetricPublication]:
    """The fleet's newest publications first (``fleet=None``: every fleet's)."""
    qs: QuerySet[MetricPublication] = MetricPublication.objects.order_by("-slot_start")
    if fleet is not None:
        qs = qs.filter(fleet=fleet)
    if since is not None:
        qs = qs.filter(slot_start__gte=since)
    return list(qs[:limit])


def publication_latest(fleet: str = DEFAULT_FLEET) -> MetricPublication | None:
    return MetricPublication.objects.filter(fleet=fleet).order_by("-slot_start").first()
