"""The internal audit endpoint: what the backlog source says the backlog is now.

It answers the question the old Lambda asked over the internet, so that a
person or ``manage.py check_internal_api`` can compare it with what the
publisher measured. It reads only; it publishes nothing.

One fleet an answer (``?fleet=NAME``; without it the default fleet, ``video``):
a fleet measured by the host's backlog source answers from it; a fleet measured
by its SQS queue answers from the queue's depth (visible + in flight). The answer
names its ``fleet``; an unknown fleet is a 404 whose error lists the known ones.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from scaling.audit.aws_errors import error_sentence
from scaling.audit.aws_reads import queue_depth_read
from scaling.audit.internal_auth import internal_request_refusal
from scaling.audit.part import AWS_ERRORS, ERROR_LIMIT
from scaling.audit.serialise import backlog_answer, queue_answer
from scaling.fleets import Fleet, UnknownFleet, fleet_get
from scaling.port import backlog_source
from scaling.selectors import publication_latest

logger = logging.getLogger("scaling.internal_api")

FLEET_PARAM = "fleet"


def _json(data: dict[str, Any], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    # A proxy or CDN in front must never keep an answer for the next caller.
    response["Cache-Control"] = "no-store"
    return response


def _answer(fleet: Fleet) -> JsonResponse:
    now = timezone.now()
    if fleet.source == "sqs":
        try:
            visible, in_flight = queue_depth_read(fleet.queue_url)
        except (*AWS_ERRORS, KeyError, ValueError) as exc:
            reason = error_sentence(exc, role="publisher", limit=ERROR_LIMIT)
            logger.error("Internal API: queue unavailable | fleet=%s error=%s", fleet.name, reason)
            return _json({"error": f"queue depth unavailable ({type(exc).__name__})"}, status=503)
        data = queue_answer(
            visible=visible,
            in_flight=in_flight,
            publication=publication_latest(fleet=fleet.name),
            now=now,
        )
    else:
        backlog = backlog_source().backlog_get()
        data = backlog_answer(backlog, publication_latest(fleet=fleet.name), now=now)
    return _json({**data, "fleet": fleet.name})


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
        # No fleet name is longer than 32 characters: a longer value is not echoed whole.
        fleet = fleet_get((request.GET.get(FLEET_PARAM) or "")[:40] or None)
    except UnknownFleet as exc:
        return _json({"error": str(exc)}, status=404)
    try:
        return _answer(fleet)
    except DatabaseError as exc:
        logger.error("Internal API: database unavailable | error=%s", exc)
        return _json({"error": f"database unavailable ({type(exc).__name__})"}, status=503)
