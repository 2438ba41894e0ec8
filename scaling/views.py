"""The internal audit endpoint: what the backlog source says the backlog is now.

It answers the question the old Lambda asked over the internet, so that a
person or ``manage.py check_internal_api`` can compare it with what the
publisher measured. It reads only; it publishes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from scaling.audit.internal_auth import internal_request_refusal
from scaling.audit.serialise import backlog_answer
from scaling.port import backlog_source
from scaling.selectors import publication_latest

logger = logging.getLogger("scaling.internal_api")


def _json(data: dict[str, Any], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    # A proxy or CDN in front must never keep an answer for the next caller.
    response["Cache-Control"] = "no-store"
    return response


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
        backlog = backlog_source().backlog_get()
        publication = publication_latest()
    except DatabaseError as exc:
        logger.error("Internal API: database unavailable | error=%s", exc)
        return _json({"error": f"database unavailable ({type(exc).__name__})"}, status=503)
    return _json(backlog_answer(backlog, publication, now=timezone.now()))
