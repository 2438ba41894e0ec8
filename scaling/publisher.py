"""Where the metric is published: one PutMetricData call per tick."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from scaling.aws import cloudwatch_client
from scaling.deadline import DeadlineExceeded, deadline, deadline_cause
from scaling.metric_spec import MetricSpec


def metric_datums_build(
    *, spec: MetricSpec, timestamp: datetime, backlog: int, oldest_age_seconds: float | None
) -> list[dict[str, Any]]:
    if backlog < 0:
        raise ValueError(f"backlog {backlog} is negative")
    datums: list[dict[str, Any]] = [
        {
            "MetricName": spec.metric_name,
            "Dimensions": spec.dimensions_api(),
            "Timestamp": timestamp,
            "Value": float(backlog),
            "Unit": spec.unit,
            "StorageResolution": spec.storage_resolution,
        }
    ]
    if oldest_age_seconds is not None and math.isfinite(oldest_age_seconds):
        datums.append(
            {
                "MetricName": spec.oldest_age_metric_name,
                "Dimensions": spec.dimensions_api(),
                "Timestamp": timestamp,
                "Value": round(max(0.0, oldest_age_seconds), 3),
                "Unit": spec.oldest_age_unit,
                "StorageResolution": spec.storage_resolution,
            }
        )
    return datums


class MetricPublishError(Exception):
    """PutMetricData failed after botocore's bounded retries."""

    def __init__(self, cause: BaseException, attempts: int) -> None:
        cause = deadline_cause(cause)
        self.cause = cause
        self.attempts = attempts
        text = " ".join(str(cause).split())
        super().__init__(f"{type(cause).__name__}: {text} ({attempts} attempts)")


def metric_publish(
    *,
    spec: MetricSpec,
    timestamp: datetime,
    backlog: int,
    oldest_age_seconds: float | None,
    timeout_seconds: float = 0,
) -> int:
    """Publish the datums; return how many HTTP attempts it took."""
    datums = metric_datums_build(
        spec=spec, timestamp=timestamp, backlog=backlog, oldest_age_seconds=oldest_age_seconds
    )
    client = cloudwatch_client()
    attempts = 0

    def _count(**kwargs: Any) -> None:
        nonlocal attempts
        attempts += 1

    event = "before-send.cloudwatch.PutMetricData"
    client.meta.events.register(event, _count)
    try:
        with deadline(timeout_seconds, "CloudWatch"):
            client.put_metric_data(Namespace=spec.namespace, MetricData=datums)  # type: ignore[arg-type]
    except (BotoCoreError, ClientError, DeadlineExceeded) as exc:
        raise MetricPublishError(exc, attempts) from exc
    finally:
        # The client is shared across ticks: leave no handler behind.
        client.meta.events.unregister(event, _count)
    return attempts
