"""This project's backlog source (SCALING_BACKLOG_SOURCE): only ``backlog_get``.

Its encoders hold no leases, so scaling's lease recovery, scale-in protection and
drain hook are off here.
"""

from django.db.models import Count, Min
from django.utils import timezone

from scaling.api import Backlog

from .models import Encode


class EncodeBacklog:
    def backlog_get(self) -> Backlog:
        now = timezone.now()
        rows = (
            Encode.objects.filter(status__in=(Encode.Status.QUEUED, Encode.Status.ENCODING))
            .values("status")
            .annotate(count=Count("id"), oldest=Min("queued_at"))
            .order_by()
        )
        by_status = {row["status"]: row for row in rows}
        queued = by_status.get(Encode.Status.QUEUED, {})
        encoding = by_status.get(Encode.Status.ENCODING, {})
        return Backlog(
            waiting=int(queued.get("count", 0)),
            in_progress=int(encoding.get("count", 0)),
            oldest_waiting_at=queued.get("oldest"),
            measured_at=now,
        )
