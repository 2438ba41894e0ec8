"""Parsers for environment values: text in, a typed value or one sentence out.

``academy/settings.py`` is still the only module that reads ``os.environ``; it
hands each raw value here. Every function is pure (no environment, no Django
settings), so the rules can be tested on their own, and every refusal is an
``ImproperlyConfigured`` whose message says what to set: ``manage.py`` prints
it as one line. A value that may hold a password (a broker URL) is never
repeated in a message.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
# What logging.config accepts by name (WARN and FATAL included: they always worked).
LOG_LEVELS = frozenset(logging.getLevelNamesMapping())
# botocore's own rule for a region name; a value it would refuse at the first call
# is refused at start-up instead.
REGION_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")
# The longest key internal_keys_parse accepts, in UTF-8 bytes. INTERNAL_API_KEY no
# longer goes through it (its rule is the scaling app's, system check scaling.E008);
# WORKER_API_KEY still does.
INTERNAL_KEY_MAX_LENGTH = 512


def env_bool_parse(name: str, raw: str | None, *, default: bool) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: set it to true or false.")


def env_int_parse(name: str, raw: str | None, *, default: int, minimum: int) -> int:
    text = (raw or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is below {minimum}: set it to a whole number, {minimum} or more."
        )
    return value


def env_list_parse(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def log_level_parse(raw: str | None) -> str:
    level = (raw or "").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise ImproperlyConfigured(
            f"LOG_LEVEL={raw!r} is not a log level: set it to DEBUG, INFO, WARNING, ERROR "
            "or CRITICAL."
        )
    return level


def aws_region_parse(name: str, raw: str) -> str:
    region = raw.strip()
    if not REGION_RE.match(region):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an AWS region name: set it to e.g. ap-northeast-2."
        )
    return region


def aws_endpoint_parse(raw: str | None) -> str | None:
    url = (raw or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(
            f"AWS_ENDPOINT_URL={raw!r} is not an http(s) URL: set it to e.g. "
            "http://127.0.0.1:5000, or leave it unset for real AWS."
        )
    return url


def broker_url_parse(raw: str | None, *, transports: frozenset[str]) -> str:
    """The broker URL, or filesystem:// when unset or empty; ``transports`` are kombu's."""
    url = (raw or "").strip() or "filesystem://"
    scheme, separator, _ = url.partition("://")
    if not separator or not scheme:
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL is not a URL: set it to e.g. redis://127.0.0.1:6379/0."
        )
    # kombu reads "sqla+postgresql://" as transport "sqla"; the scheme is safe to repeat.
    transport = scheme.split("+", 1)[0]
    if transport not in transports:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL has an unknown transport {transport!r}: set it to e.g. "
            "redis://127.0.0.1:6379/0."
        )
    return url


# Transports and stores that live on one host (a directory, a process's memory).
PER_HOST_SCHEMES = frozenset({"filesystem", "memory", "file"})


def production_shared_check(name: str, raw: str | None, *, example: str, why: str) -> None:
    """With DEBUG off: the value must be set, and reachable from every host (invariant 9)."""
    url = (raw or "").strip()
    if not url:
        raise ImproperlyConfigured(
            f"{name} is not set: DEBUG is off, so set it to a server every host shares "
            f"({example}); an embedded default is per host and {why}."
        )
    scheme = url.partition("://")[0].split("+", 1)[0]
    if scheme in PER_HOST_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} uses {scheme}://, which is per host: DEBUG is off, so set it to a "
            f"server every host shares ({example}); otherwise {why}."
        )


def internal_keys_parse(name: str, raw: str | None) -> list[str]:
    keys = env_list_parse(raw)
    # Bytes, not characters: an endpoint sees the header's UTF-8 bytes one per character.
    if any(len(key.encode("utf-8")) > INTERNAL_KEY_MAX_LENGTH for key in keys):
        raise ImproperlyConfigured(
            f"{name} holds a key longer than {INTERNAL_KEY_MAX_LENGTH} bytes, which no "
            f"request can present: set keys of {INTERNAL_KEY_MAX_LENGTH} bytes or fewer."
        )
    return keys
