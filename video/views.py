"""The worker API: claim, renew, finish and release a video's lease, JSON in and out;
and claim-next, the oldest waiting video for a worker whose queue is empty.

For workers that do not run Django. Each view is thin: check the method and
the key, parse the body, call one service, answer (claim-next: 204 when no
video waits). Every bad request gets a 4xx JSON ``{"error": sentence}`` and
changes nothing; a database that does not answer gets 503.

The key is ``X-Worker-Key`` against ``WORKER_API_KEY`` (constant-time, with the
same comparison as the audit endpoint): a header of its own, so the audit key
(``X-Internal-Key``) can never claim a video, and no key configured refuses
everyone.

The fleet (``scaling.fleet.protection``, the only AWS behind these views): a
successful claim protects the claiming instance from scale-in before it answers
(``"protected"``), and a renewal answers ``"drain": true`` when the lease's
instance is leaving the group.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from scaling.api import (
    error_one_line,
    instance_draining,
    instance_protect_for_claim,
    internal_key_refusal,
)
from video import services
from video.conf import worker_api_keys
from video.models import Video
from video.services import ClaimRefusal, Lease

logger = logging.getLogger("video.worker_api")

HEADER_NAME = "X-Worker-Key"
_META_NAME = "HTTP_X_WORKER_KEY"
# Far above any real request (a finish with a long error is a few KiB).
MAX_BODY_BYTES = 16 * 1024
# The longest string each field takes (the columns they are stored in).
FIELD_MAX_LENGTH = {
    "instance_id": Video._meta.get_field("lease_instance_id").max_length or 64,
    "worker_id": Video._meta.get_field("lease_worker_id").max_length or 128,
    "token": Video._meta.get_field("lease_token").max_length or 64,
    "status": 16,
    "error": 4000,
}
_BIGINT_MAX = 2**63 - 1

CLAIM_REFUSAL_SENTENCES = {
    ClaimRefusal.TAKEN: "video {id} is being processed by another worker",
    ClaimRefusal.DONE: "video {id} is already READY",
    ClaimRefusal.FAILED: "video {id} has FAILED",
}


class BadRequest(Exception):
    def __init__(self, status: int, sentence: str, **extra: Any) -> None:
        super().__init__(sentence)
        self.status = status
        self.body = {"error": sentence, **extra}


def _json(data: dict[str, Any], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _video_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) > _BIGINT_MAX:
        raise BadRequest(404, f"no video {raw[:40]!r}")
    return int(raw)


def _body(request: HttpRequest, fields: dict[str, bool]) -> dict[str, str]:
    """The JSON object's ``fields`` (name: required), each a non-empty string of a sane length."""
    too_big = BadRequest(400, f"request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > MAX_BODY_BYTES:
        raise too_big
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "request body must be a JSON object")
    values: dict[str, str] = {}
    for name, required in fields.items():
        if name not in data or data[name] is None:
            if required:
                raise BadRequest(400, f"field {name!r} is missing")
            continue
        value = data[name]
        if not isinstance(value, str):
            raise BadRequest(400, f"field {name!r} must be a string")
        if required and not value:
            raise BadRequest(400, f"field {name!r} is empty")
        limit = FIELD_MAX_LENGTH[name]
        if len(value) > limit:
            raise BadRequest(400, f"field {name!r} is longer than {limit} characters")
        values[name] = value
    return values


def _lease_lost(video_id: int, what: str) -> BadRequest:
    return BadRequest(
        409,
        f"the lease on video {video_id} is lost: {what}",
        reason=services.LEASE_LOST,
    )


def _unknown(video_id: int) -> BadRequest:
    return BadRequest(404, f"no video {video_id}")


def _guarded(request: HttpRequest, answer: Callable[[], dict[str, Any] | None]) -> HttpResponse:
    """Method, key, bad requests, database errors: the same for every endpoint."""
    if request.method != "POST":
        response = _json({"error": "method not allowed: use POST"}, status=405)
        response["Allow"] = "POST"
        return response
    refusal = internal_key_refusal(presented=request.META.get(_META_NAME), keys=worker_api_keys())
    if refusal is not None:
        logger.warning(
            "Worker API request refused | reason=%s path=%s remote=%s",
            refusal.value,
            request.path,
            request.META.get("REMOTE_ADDR", "-"),
        )
        return _json({"error": "forbidden"}, status=403)
    try:
        data = answer()
    except BadRequest as exc:
        return _json(exc.body, status=exc.status)
    except DatabaseError as exc:
        logger.error("Worker API: database unavailable | error=%s", error_one_line(exc))
        return _json({"error": f"database unavailable ({type(exc).__name__})"}, status=503)
    if data is None:  # nothing to say: 204, no body
        empty = HttpResponse(status=204)
        empty["Cache-Control"] = "no-store"
        return empty
    return _json(data)


def _worker_view(
    handler: Callable[[HttpRequest, int], dict[str, Any]],
) -> Callable[[HttpRequest, str], HttpResponse]:
    """An endpoint of one video: ``handler(request, video_id)``, guarded."""

    @csrf_exempt  # a machine API with its own key; no cookies, no sessions
    def view(request: HttpRequest, video_id: str) -> HttpResponse:
        return _guarded(request, lambda: handler(request, _video_id(video_id)))

    view.__name__ = view.__qualname__ = f"{handler.__name__}_view"
    return view


def _claim(request: HttpRequest, video_id: int) -> dict[str, Any]:
    body = _body(request, {"instance_id": True, "worker_id": True})
    result = services.video_claim(
        video_id=video_id, instance_id=body["instance_id"], worker_id=body["worker_id"]
    )
    if result is ClaimRefusal.UNKNOWN:
        raise _unknown(video_id)
    if isinstance(result, ClaimRefusal):
        sentence = CLAIM_REFUSAL_SENTENCES[result].format(id=video_id)
        raise BadRequest(409, sentence, reason=result.value)
    # Before answering: no encode starts on an instance scale-in may pick. Bounded
    # (~2 s) and never raising; the lease is granted whatever AWS says.
    protected = instance_protect_for_claim(body["instance_id"])
    return _lease_json(result, protected=protected)


@csrf_exempt
def claim_next_view(request: HttpRequest) -> HttpResponse:
    """The longest-waiting UPLOADED video for a worker whose queue is empty; 204: none."""

    def answer() -> dict[str, Any] | None:
        body = _body(request, {"instance_id": True, "worker_id": True})
        lease = services.video_claim_next(
            instance_id=body["instance_id"], worker_id=body["worker_id"]
        )
        if lease is None:
            return None
        logger.info("Video claimed without a message | video_id=%s", lease.video_id)
        # As for a claim: protected before the answer, whatever AWS says.
        return _lease_json(lease, protected=instance_protect_for_claim(body["instance_id"]))

    return _guarded(request, answer)


def _lease_json(lease: Lease, *, protected: bool | None) -> dict[str, Any]:
    return {
        "video_id": lease.video_id,
        "token": lease.token,
        "lease_expires_at": lease.expires_at.isoformat(),
        "lease_seconds": lease.lease_seconds,
        "renew_seconds": lease.renew_seconds,
        "attempts": lease.attempts,
        # Scale-in protection of the claiming instance (None: not an EC2 instance id).
        "protected": protected,
    }


def _renew(request: HttpRequest, video_id: int) -> dict[str, Any]:
    body = _body(request, {"token": True})
    result = services.video_lease_renew(video_id=video_id, token=body["token"])
    if result.reason == services.UNKNOWN:
        raise _unknown(video_id)
    if not result.ok or result.expires_at is None:
        raise _lease_lost(video_id, "stop working on it, another worker may hold it")
    return {
        "video_id": video_id,
        "lease_expires_at": result.expires_at.isoformat(),
        # The instance is leaving the group: finish this video, take no other.
        "drain": result.drain or instance_draining(result.instance_id),
    }


def _finish(request: HttpRequest, video_id: int) -> dict[str, Any]:
    body = _body(request, {"token": True, "status": True, "error": False})
    status = body["status"]
    if status == "READY":
        result = services.video_finish(
            video_id=video_id, token=body["token"], status="READY", error=body.get("error", "")
        )
    elif status == "FAILED":
        result = services.video_finish(
            video_id=video_id, token=body["token"], status="FAILED", error=body.get("error", "")
        )
    else:
        raise BadRequest(400, "field 'status' must be 'READY' or 'FAILED'")
    if result.reason == services.UNKNOWN:
        raise _unknown(video_id)
    if not result.ok:
        raise _lease_lost(video_id, f"nothing changed, the video is {result.status}")
    return {"video_id": video_id, "status": result.status}


def _release(request: HttpRequest, video_id: int) -> dict[str, Any]:
    body = _body(request, {"token": True})
    result = services.video_release(video_id=video_id, token=body["token"])
    if result.reason == services.UNKNOWN:
        raise _unknown(video_id)
    if not result.ok:
        raise _lease_lost(video_id, "nothing changed")
    return {"video_id": video_id, "status": "UPLOADED"}


claim_view = _worker_view(_claim)
renew_view = _worker_view(_renew)
finish_view = _worker_view(_finish)
release_view = _worker_view(_release)
