"""Typed access to the scaling settings.

``academy/settings.py`` reads the environment; this module turns those raw
values into types. Parsing never raises: a value that does not parse becomes
``None`` here and ``scaling.checks`` reports it with a sentence at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

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
    # Per fleet (scaling.fleets.Fleet.conf): the metric's dimensions other than
    # AutoScalingGroupName (empty: WorkerType alone), and the fleet's name.
    dimensions: tuple[tuple[str, str], ...] = ()
    fleet: str = "video"

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


# What a host project gets for a setting it does not define (the contract's defaults).
# SCALING_STATE_URL has none: production must name a shared store (scaling.E007).
DEFAULTS: dict[str, object] = {
    "SCALING_NAMESPACE": "Academy/VideoProcessing",
    "SCALING_METRIC_NAME": "BacklogCount",
    "SCALING_WORKER_TYPE": "Video",
    "SCALING_ASG_NAME": "academy-video-worker-asg",
    "SCALING_SQS_QUEUE_URL": "",
    "SCALING_PUBLISH_INTERVAL_SECONDS": 60,
    "SCALING_AUDIT_RETENTION_DAYS": 30,
    "SCALING_STATE_URL": "",
    "AWS_REGION": "ap-northeast-2",
    "AWS_ENDPOINT_URL": None,
}


def _setting(name: str) -> object:
    return getattr(settings, name, DEFAULTS[name])


def scaling_settings() -> ScalingSettings:
    interval_raw = str(_setting("SCALING_PUBLISH_INTERVAL_SECONDS"))
    retention_raw = str(_setting("SCALING_AUDIT_RETENTION_DAYS"))
    endpoint = _setting("AWS_ENDPOINT_URL")
    return ScalingSettings(
        namespace=str(_setting("SCALING_NAMESPACE")).strip(),
        metric_name=str(_setting("SCALING_METRIC_NAME")).strip(),
        worker_type=str(_setting("SCALING_WORKER_TYPE")).strip(),
        asg_name=str(_setting("SCALING_ASG_NAME")).strip(),
        sqs_queue_url=str(_setting("SCALING_SQS_QUEUE_URL") or "").strip(),
        interval_raw=interval_raw,
        interval_seconds=parse_int(interval_raw),
        audit_retention_raw=retention_raw,
        audit_retention_days=parse_int(retention_raw),
        region=str(_setting("AWS_REGION")),
        endpoint_url=str(endpoint) if endpoint else None,
        state_url=str(_setting("SCALING_STATE_URL") or ""),
    )


def internal_api_keys() -> list[str]:
    return list(getattr(settings, "INTERNAL_API_KEYS", []))


def environment_key(conf: ScalingSettings) -> str:
    """What tells two deployments apart when they share a Redis or a var/ directory.

    The metric's identity in CloudWatch is (region, namespace, group): two
    environments that differ in any of them publish separate series, so each
    must claim its own slots. Quoted so the key is also a safe file name.
    """
    parts = (conf.region, conf.namespace, conf.asg_name)
    return ":".join(quote(part, safe="") for part in parts)
