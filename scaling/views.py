"""The internal audit endpoint: what the database says the backlog is now.

It answers the question the old Lambda asked over the internet, so that a
person or ``manage.py check_internal_api`` can compare it with what the
publisher measured. It reads only; it publishes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from scaling.audit.internal_auth import internal_request_refusal
from scaling.models import MetricPublication
from scaling.selectors import publication_latest
from video.selectors import Backlog, video_backlog_get

logger = logging.getLogger("scaling.internal_api")


def _json(data: dict[str, Any], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    # A proxy or CDN in front must never keep an answer for the next caller.
    response["Cache-Control"] = "no-store"
    return response


def _publication_json(publication: MetricPublication | None, *, now: datetime) -> Any:
    if publication is None:
        return None
    return {
        "value": publication.value,
        "source": publication.source or None,
        "status": publication.status,
        "slot_start": publication.slot_start.isoformat(),
        "age_seconds": round((now - publication.slot_start).total_seconds(), 3),
    }


def _backlog_json(backlog: Backlog, publication: MetricPublication | None) -> dict[str, Any]:
    oldest = backlog.oldest_waiting_seconds
    return {
        "backlog_count": backlog.total,
        "uploaded": backlog.uploaded,
        "processing": backlog.processing,
        "oldest_waiting_seconds": None if oldest is None else round(oldest, 3),
        "measured_at": backlog.measured_at.isoformat(),
        "last_publication": _publication_json(publication, now=timezone.now()),
    }


# CSRF protection would answer a POST with 403 before the method check; this
# view changes nothing and accepts GET only, so the exemption is safe.
@csrf_exempt
def backlog_count_view(request: HttpRequest) -> JsonResponse:
    if request.method != "GET":
        response = _json({"error": "method not allowed"}, status=405)
        response["Allow"] = "GET"
        return response
    if internal_request_refusal(request) is not None:
        return _json({"error": "forbidden"}, status=403)
    try:
        backlog = video_backlog_get()
        publication = publication_latest()
    except DatabaseError as exc:
        logger.error("Internal API: database unavailable | error=%s", exc)
        return _json({"error": f"database unavailable ({type(exc).__name__})"}, status=503)
    return _json(_backlog_json(backlog, publication))
