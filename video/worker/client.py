"""A client for the worker API and the job queue, for workers that do not run Django.

The academy's real transcoder imports this module or copies it: it must import
nothing from Django or from this project. HTTP goes through ``http.client``
with an explicit timeout on every call; ``http.client`` also ignores the proxy
variables that ``urllib`` would apply, which matters for the instance metadata
service (a link-local address no proxy can reach). boto3 is imported only by
``SqsJobQueue``, so the HTTP half runs with the standard library alone.

Errors fall in three kinds, so a caller knows what to do without reading
status codes:
- ``TransientApiError``: try again later (no connection, a timeout, a 5xx);
- ``LeaseLost``: stop working on the video, someone else may hold it;
- ``WorkerApiError``: retrying will not help (a refused key, a bad request).
A claim that is refused (taken, done, failed, unknown video) is not an error
but a ``ClaimRefused`` answer: a duplicate job message is expected.
"""

from __future__ import annotations

import http.client
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_TIMEOUT = 10.0
# The longest answer read from the API: every answer is a few fields.
MAX_ANSWER_BYTES = 64 * 1024
# The longest error text sent with a FAILED finish.
MAX_ERROR_CHARS = 500
# SQS refuses a visibility timeout above 12 hours.
MAX_VISIBILITY_SECONDS = 43_200
INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


class WorkerApiError(Exception):
    """The API refused the request and a retry would be refused the same way."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class TransientApiError(WorkerApiError):
    """The request may succeed later: no connection, a timeout or a server error.

    ``api_alive`` is true when the worker API itself answered (a JSON 503: its
    database is down). While the database is down no lease can be recovered, so
    such an answer tells the worker that its lease is still safe.
    """

    def __init__(self, message: str, *, status: int | None = None, api_alive: bool = False):
        super().__init__(message, status=status)
        self.api_alive = api_alive


class LeaseLost(WorkerApiError):
    """The token no longer holds the video: stop working on it and do not finish it."""


@dataclass(frozen=True)
class Lease:
    video_id: int
    token: str
    lease_expires_at: datetime
    lease_seconds: float
    renew_seconds: float
    attempts: int
    protected: bool

    @property
    def visibility_seconds(self) -> int:
        """How long the job message stays in flight after each renew: two lease periods."""
        return visibility_for(self.lease_seconds)


@dataclass(frozen=True)
class ClaimRefused:
    video_id: int
    reason: str  # "taken", "done", "failed" or "unknown"
    error: str


@dataclass(frozen=True)
class Renewal:
    video_id: int
    lease_expires_at: datetime
    drain: bool


@dataclass(frozen=True)
class StatusAnswer:
    """The answer to a finish or a release: the video's status now."""

    video_id: int
    status: str


def visibility_for(lease_seconds: float) -> int:
    return max(1, min(MAX_VISIBILITY_SECONDS, math.ceil(lease_seconds * 2)))


def error_one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough to store with the video."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def base_url_check(url: str) -> None:
    """Raises ValueError unless ``url`` is ``http(s)://host[:port][/prefix]``."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or not port_ok:
        raise ValueError(f"{url!r} is not an http(s) URL")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    base_url_check(url)
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(str(parts.hostname), parts.port, timeout=timeout), parts.path.rstrip("/")


class WorkerApiClient:
    """claim, renew, finish and release over ``/api/v1/internal/video/<id>/...``;
    claim_next over ``/api/v1/internal/video/claim-next/``.

    One connection per request: a worker makes one call every renew period, so
    keeping connections alive would buy nothing and add stale-socket errors.
    """

    def __init__(self, base_url: str, key: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        base_url_check(base_url)  # refuses a bad URL now rather than at the first call
        self.base_url = base_url
        self._key = key
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the key
        return f"WorkerApiClient({self.base_url!r}, timeout={self.timeout})"

    def claim(self, video_id: int, *, instance_id: str, worker_id: str) -> Lease | ClaimRefused:
        body = {"instance_id": instance_id, "worker_id": worker_id}
        status, answer = self._post(video_id, "claim", body)
        if status == 404:
            return ClaimRefused(video_id, "unknown", _error_text(answer, status))
        if status == 409:
            return ClaimRefused(
                video_id, str(answer.get("reason", "")), _error_text(answer, status)
            )
        self._refusal_raise(status, answer, "claim")
        return _lease(answer)

    def claim_next(self, *, instance_id: str, worker_id: str) -> Lease | None:
        """The longest-waiting video, claimed for us (as ``claim``), or None when none waits.

        For a worker whose queue is empty: a video whose message was lost still
        gets done. An API without this endpoint answers 404: a ``WorkerApiError``
        with ``status`` 404.
        """
        body = {"instance_id": instance_id, "worker_id": worker_id}
        status, answer = self._request("/api/v1/internal/video/claim-next/", "claim-next", body)
        if status == 204:
            return None
        self._refusal_raise(status, answer, "claim-next")
        return _lease(answer)

    def renew(self, video_id: int, *, token: str) -> Renewal:
        status, answer = self._post(video_id, "renew", {"token": token})
        self._lease_check(status, answer, "renew")
        return Renewal(
            video_id=_int(answer, "video_id"),
            lease_expires_at=_datetime(answer, "lease_expires_at"),
            drain=answer.get("drain") is True,
        )

    def finish(
        self, video_id: int, *, token: str, status: str, error: str | None = None
    ) -> StatusAnswer:
        if status not in ("READY", "FAILED"):
            raise ValueError(f"a finish is READY or FAILED, not {status!r}")
        body: dict[str, Any] = {"token": token, "status": status}
        if error is not None:
            body["error"] = error[:MAX_ERROR_CHARS]
        code, answer = self._post(video_id, "finish", body)
        self._lease_check(code, answer, "finish")
        return StatusAnswer(_int(answer, "video_id"), _str(answer, "status"))

    def release(self, video_id: int, *, token: str) -> StatusAnswer:
        status, answer = self._post(video_id, "release", {"token": token})
        self._lease_check(status, answer, "release")
        return StatusAnswer(_int(answer, "video_id"), _str(answer, "status"))

    def _lease_check(self, status: int, answer: dict[str, Any], action: str) -> None:
        # 404 here means the video is gone: the lease cannot hold either.
        if status in (404, 409):
            reason = str(answer.get("reason") or ("unknown" if status == 404 else "lease-lost"))
            raise LeaseLost(_error_text(answer, status), status=status, reason=reason)
        self._refusal_raise(status, answer, action)

    @staticmethod
    def _refusal_raise(status: int, answer: dict[str, Any], action: str) -> None:
        if status == 200:
            return
        text = f"{action} answered {status}: {_error_text(answer, status)}"
        if status >= 500:
            raise TransientApiError(text, status=status, api_alive=bool(answer.get("error")))
        raise WorkerApiError(text, status=status, reason=str(answer.get("reason", "")))

    def _post(self, video_id: int, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = f"/api/v1/internal/video/{quote(str(video_id))}/{action}/"
        return self._request(path, f"{action} of video {video_id}", body, action=action)

    def _request(
        self, path: str, what: str, body: dict[str, Any], *, action: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` to ``path``: (status, the JSON object answered; {} for a 204)."""
        action = action or what
        conn, prefix = _connection(self.base_url, self.timeout)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Worker-Key": self._key,
            "User-Agent": "academy-video-worker/1",
        }
        try:
            conn.request("POST", prefix + path, body=json.dumps(body).encode(), headers=headers)
            response = conn.getresponse()
            raw = response.read(MAX_ANSWER_BYTES)
            status = response.status
        except TimeoutError:
            raise TransientApiError(f"{what}: no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise TransientApiError(f"{what}: {error_one_line(exc)}") from None
        finally:
            conn.close()
        if status == 204:
            return status, {}
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            answer = None
        if not isinstance(answer, dict):
            if status >= 500:
                raise TransientApiError(f"{action} answered {status} (not JSON)", status=status)
            raise WorkerApiError(f"{action} answered {status} without a JSON object", status=status)
        return status, answer


def _lease(answer: dict[str, Any]) -> Lease:
    return Lease(
        video_id=_int(answer, "video_id"),
        token=_str(answer, "token"),
        lease_expires_at=_datetime(answer, "lease_expires_at"),
        lease_seconds=_number(answer, "lease_seconds"),
        renew_seconds=_number(answer, "renew_seconds"),
        attempts=_int(answer, "attempts"),
        protected=bool(answer.get("protected", False)),
    )


def _error_text(answer: dict[str, Any], status: int) -> str:
    return str(answer.get("error") or f"HTTP {status}")


def _field(answer: dict[str, Any], name: str) -> Any:
    if name not in answer:
        raise WorkerApiError(f"the worker API answered without {name!r}")
    return answer[name]


def _int(answer: dict[str, Any], name: str) -> int:
    value = _field(answer, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkerApiError(f"the worker API answered {name}={value!r}, not a whole number")
    return value


def _number(answer: dict[str, Any], name: str) -> float:
    value = _field(answer, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise WorkerApiError(f"the worker API answered {name}={value!r}, not a positive number")
    return float(value)


def _str(answer: dict[str, Any], name: str) -> str:
    value = _field(answer, name)
    if not isinstance(value, str) or not value:
        raise WorkerApiError(f"the worker API answered {name}={value!r}, not a text")
    return value


def _datetime(answer: dict[str, Any], name: str) -> datetime:
    value = _str(answer, name)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise WorkerApiError(
            f"the worker API answered {name}={value!r}, not an ISO 8601 time"
        ) from None
