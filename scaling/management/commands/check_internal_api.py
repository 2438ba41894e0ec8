"""Ask each given deployment for the backlog, and compare with the database now.

It replaces the old LOCAL-versus-PUBLIC script: point it at gunicorn
directly and at the public name through every proxy, and a hop that drops
``X-Internal-Key`` shows up as a 403 on that line only.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from scaling.audit.internal_auth import HEADER_NAME
from scaling.conf import internal_api_keys
from scaling.management.base import OneLineErrorCommand
from video.selectors import video_backlog_get

ENDPOINT_PATH = "/api/v1/internal/video/backlog-count/"


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
    return video_backlog_get().total


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
        why = {
            403: "key refused: the key differs, or a proxy drops X-Internal-Key",
            301: "redirected (not followed, so the key is not sent elsewhere)",
            302: "redirected (not followed, so the key is not sent elsewhere)",
            307: "redirected (not followed, so the key is not sent elsewhere)",
            308: "redirected (not followed, so the key is not sent elsewhere)",
        }.get(status, f"HTTP {status}")
        return Answer(url, status, None, after, False, why)
    if not isinstance(value, int) or isinstance(value, bool):
        return Answer(url, status, None, after, False, "no integer backlog_count in the answer")
    # The backlog may move while we ask; any value between the counts taken
    # before and after the request is what the database said at some moment.
    agrees = min(before, after) <= value <= max(before, after)
    error = "" if agrees else f"the database counts {after} now"
    return Answer(url, status, value, after, agrees, error)


class Command(OneLineErrorCommand):
    help = (
        "Call the internal backlog endpoint at each base URL with the configured key and "
        "compare each answer with the database count now. Exit 1 when any URL disagrees "
        "or fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "urls", nargs="+", metavar="URL", help="Base URL, e.g. http://127.0.0.1:8000"
        )
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="Seconds to wait for each URL."
        )
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        urls: list[str] = []
        for given in options["urls"]:
            try:
                urls.append(endpoint_url(given))
            except ValueError as exc:
                raise CommandError(f"{given!r} is not a usable URL: {exc}.") from exc
        if not math.isfinite(options["timeout"]) or options["timeout"] <= 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        keys = internal_api_keys()
        if not keys:
            raise CommandError(
                "No internal API key is configured: set INTERNAL_API_KEY to the key the "
                "servers expect."
            )
        try:
            answers = [_check(url, key=keys[0], timeout=options["timeout"]) for url in urls]
        except DatabaseError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise CommandError(
                f"Cannot count the backlog in the database ({type(exc).__name__}: {first_line})."
            ) from exc
        if options["json"]:
            self.stdout.write(json.dumps([asdict(a) for a in answers], sort_keys=True))
        else:
            for answer in answers:
                style = self.style.SUCCESS if answer.agrees else self.style.ERROR
                self.stdout.write(style(answer.line()))
        failing = sum(1 for a in answers if not a.agrees)
        if failing:
            raise CommandError(f"{failing} of {len(answers)} URLs disagree or fail.", returncode=1)
