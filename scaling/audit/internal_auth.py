"""The ``X-Internal-Key`` check for the internal API.

Kept apart from the views so that the rules are in one short place: every
configured key is compared in constant time (all of them, whatever matched
first), a server with no key refuses everyone, and neither the presented nor
a configured key is ever logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from enum import StrEnum

from django.http import HttpRequest

from scaling.conf import internal_api_keys

logger = logging.getLogger("scaling.internal_api")

HEADER_NAME = "X-Internal-Key"
_META_NAME = "HTTP_X_INTERNAL_KEY"
# Far above any real key, far below the proxies' header limits: a longer value
# is refused before comparing, which tells a caller only that it is too long.
# A configured key is measured in UTF-8 bytes (the server hands the header over
# one byte per character); scaling.E008 refuses a longer one, which no request
# could present.
MAX_KEY_LENGTH = 512


class KeyRefusal(StrEnum):
    UNCONFIGURED = "no key configured on the server"
    MISSING = "no key presented"
    MALFORMED = "malformed key presented"
    MISMATCH = "key does not match"


def _as_bytes(value: str) -> bytes:
    # WSGI servers hand header values over as latin-1 decoded text; turning
    # them back into the raw bytes lets a UTF-8 key from the environment match.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogatepass")


def internal_key_refusal(*, presented: str | None, keys: Sequence[str]) -> KeyRefusal | None:
    """None when ``presented`` equals one of ``keys``; otherwise why it was refused."""
    if not keys:
        return KeyRefusal.UNCONFIGURED
    if presented is None or presented == "":
        return KeyRefusal.MISSING
    # A comma can only come from a repeated header joined by the server (keys
    # themselves are comma-separated in the setting, so never contain one).
    if len(presented) > MAX_KEY_LENGTH or "," in presented:
        return KeyRefusal.MALFORMED
    candidate = _as_bytes(presented)
    matched = False
    for key in keys:
        # No early exit: the time taken does not depend on which key matched.
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return None if matched else KeyRefusal.MISMATCH


def internal_request_refusal(request: HttpRequest) -> KeyRefusal | None:
    """Check a request's ``X-Internal-Key``; log a refusal without any key in it."""
    refusal = internal_key_refusal(presented=request.META.get(_META_NAME), keys=internal_api_keys())
    if refusal is not None:
        logger.warning(
            "Internal API request refused | reason=%s path=%s remote=%s",
            refusal.value,
            request.path,
            request.META.get("REMOTE_ADDR", "-"),
        )
    return refusal
