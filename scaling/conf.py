"""Typed access to the scaling settings.

``academy/settings.py`` reads the environment; this module turns those raw
values into types. Parsing never raises: a value that does not parse becomes
``None`` here and ``scaling.checks`` reports it with a sentence at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

ALLOWED_INTERVALS = (10, 30, 60)
QUEUE_URL_RE = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d+)?/\d{12}/[A-Za-z0-9_\-]{1,80}(\.fifo)?$")


def parse_int(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d{1,9}\s*", raw):
        return int(raw)
    return None


@dataclass(frozen=True)
class ScalingSettings:
    namespace: str
    metric_name: str
    worker_type: str
    asg_name: str
    sqs_queue_url: str
    interval_raw: str
    interval_seconds: int | None
    audit_retention_raw: str
    audit_retention_days: int | None
    region: str
    endpoint_url: str | None
    state_url: str

    @property
    def interval(self) -> int:
        """The publish interval; 60 when the setting is invalid (the checks report it)."""
        if self.interval_seconds in ALLOWED_INTERVALS:
            return self.interval_seconds
        return 60

    @property
    def retention_days(self) -> int:
        days = self.audit_retention_days
        return days if days is not None and days > 0 else 30


def scaling_settings() -> ScalingSettings:
    interval_raw = str(settings.SCALING_PUBLISH_INTERVAL_SECONDS)
    retention_raw = str(settings.SCALING_AUDIT_RETENTION_DAYS)
    return ScalingSettings(
        namespace=str(settings.SCALING_NAMESPACE).strip(),
        metric_name=str(settings.SCALING_METRIC_NAME).strip(),
        worker_type=str(settings.SCALING_WORKER_TYPE).strip(),
        asg_name=str(settings.SCALING_ASG_NAME).strip(),
        sqs_queue_url=str(settings.SCALING_SQS_QUEUE_URL or "").strip(),
        interval_raw=interval_raw,
        interval_seconds=parse_int(interval_raw),
        audit_retention_raw=retention_raw,
        audit_retention_days=parse_int(retention_raw),
        region=str(settings.AWS_REGION),
        endpoint_url=settings.AWS_ENDPOINT_URL,
        state_url=str(settings.SCALING_STATE_URL),
    )


def internal_api_keys() -> list[str]:
    return list(getattr(settings, "INTERNAL_API_KEYS", []))
