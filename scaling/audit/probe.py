"""Ask each given deployment for the backlog, and compare with the database now.

It replaces the old LOCAL-versus-PUBLIC script: point it at gunicorn
directly and at the public name through every proxy, and a hop that drops
``X-Internal-Key`` shows up as a 403 on that line only. The command
``check_internal_api`` only parses its arguments and prints what this returns.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.db import DatabaseError

from scaling.audit.internal_auth import HEADER_NAME
from scaling.conf import internal_api_keys
from scaling.errors import error_one_line
from scaling.port import backlog_source

ENDPOINT_PATH = "/api/v1/internal/video/backlog-count/"
_REDIRECTED = "redirected (not followed, so the key is not sent elsewhere)"
# Why a status other than 200 fails, in the words an operator acts on.
_STATUS_REASONS = {
    403: "key refused: the key differs, or a proxy drops X-Internal-Key",
    301: _REDIRECTED,
    302: _REDIRECTED,
    307: _REDIRECTED,
    308: _REDIRECTED,
}


class ProbeError(Exception):
    """The probe cannot start or cannot finish; the message is one sentence for the operator."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Following a redirect would send the key to wherever it points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Answer:
    url: str
    status: int | None
    value: int | None
    database: int | None
    agrees: bool
    error: str = ""

    def line(self) -> str:
        status = "-" if self.status is None else str(self.status)
        value = "-" if self.value is None else str(self.value)
        database = "-" if self.database is None else str(self.database)
        verdict = "agrees" if self.agrees else f"DISAGREES: {self.error}"
        return f"{self.url}  status={status}  value={value}  database={database}  {verdict}"


def endpoint_url(base: str) -> str:
    """The endpoint under ``base``; a URL that already names the endpoint is kept."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host name")
    if parts.query or parts.fragment:
        raise ValueError("give a base URL without ?query or #fragment")
    try:
        parts.port  # noqa: B018  (raises for a port out of range or not a number)
    except ValueError as exc:
        raise ValueError("its port is not a number from 1 to 65535") from exc
    path = parts.path.rstrip("/")
    if not path.endswith(ENDPOINT_PATH.rstrip("/")):
        path += ENDPOINT_PATH.rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}/"


def _backlog_now() -> int:
    return backlog_source().backlog_get().total


def _ask(url: str, *, key: str, timeout: float) -> tuple[int, Any]:
    headers = {HEADER_NAME: key, "Accept": "application/json"}
    # The scheme was checked by endpoint_url: http or https only.
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read(65536) or b"null")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read(65536) or b"null")
        except ValueError:
            body = None
        return exc.code, body


def _check(url: str, *, key: str, timeout: float) -> Answer:
    before = _backlog_now()
    try:
        status, body = _ask(url, key=key, timeout=timeout)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        reason = getattr(exc, "reason", exc)
        return Answer(url, None, None, before, False, f"cannot connect ({reason})")
    except ValueError:
        return Answer(url, None, None, before, False, "the answer is not JSON")
    after = _backlog_now()
    value = body.get("backlog_count") if isinstance(body, dict) else None
    if status != 200:
        why = _STATUS_REASONS.get(status, f"HTTP {status}")
        return Answer(url, status, None, after, False, why)
    if not isinstance(value, int) or isinstance(value, bool):
        return Answer(url, status, None, after, False, "no integer backlog_count in the answer")
    # The backlog may move while we ask; any value between the counts taken
    # before and after the request is what the database said at some moment.
    agrees = min(before, after) <= value <= max(before, after)
    error = "" if agrees else f"the database counts {after} now"
    return Answer(url, status, value, after, agrees, error)


def deployments_probe(bases: Sequence[str], *, timeout: float) -> list[Answer]:
    """One answer per base URL, each compared with the database; ProbeError when none can be."""
    urls: list[str] = []
    for given in bases:
        try:
            urls.append(endpoint_url(given))
        except ValueError as exc:
            raise ProbeError(f"{given!r} is not a usable URL: {exc}.") from exc
    if not math.isfinite(timeout) or timeout <= 0:
        raise ProbeError("--timeout must be a positive number of seconds.")
    keys = internal_api_keys()
    if not keys:
        raise ProbeError(
            "No internal API key is configured: set INTERNAL_API_KEY to the key the servers expect."
        )
    try:
        return [_check(url, key=keys[0], timeout=timeout) for url in urls]
    except DatabaseError as exc:
        # The first line only: a driver's second line is advice that does not fit here.
        cause = error_one_line(exc, first_line=True)
        raise ProbeError(f"Cannot count the backlog in the database ({cause}).") from exc
