"""Where the metric is published: one PutMetricData call per namespace per tick
(``datums_publish``; more only past AWS's 1,000 datums a call)."""

from __future__ import annotations

import math
import random
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from scaling.aws import cloudwatch_client
from scaling.deadline import DeadlineExceeded, deadline, deadline_cause
from scaling.errors import error_text
from scaling.metric_spec import MetricSpec


def metric_datums_build(
    *,
    spec: MetricSpec,
    timestamp: datetime,
    backlog: int,
    oldest_age_seconds: float | None,
    recovered: int | None = None,
    busy_instances: int | None = None,
    protected_instances: int | None = None,
) -> list[dict[str, Any]]:
    """The slot's datums, all with the spec's dimensions. A value that was not
    measured this slot (no oldest video, recovery or the fleet reconciler not run)
    is left out, never 0."""
    if backlog < 0:
        raise ValueError(f"backlog {backlog} is negative")

    def datum(name: str, value: float, unit: str) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": spec.dimensions_api(),
            "Timestamp": timestamp,
            "Value": value,
            "Unit": unit,
            "StorageResolution": spec.storage_resolution,
        }

    datums = [datum(spec.metric_name, float(backlog), spec.unit)]
    if oldest_age_seconds is not None and math.isfinite(oldest_age_seconds):
        age = round(max(0.0, oldest_age_seconds), 3)
        datums.append(datum(spec.oldest_age_metric_name, age, spec.oldest_age_unit))
    counts = (
        (spec.recovered_metric_name, recovered),
        (spec.busy_metric_name, busy_instances),
        (spec.protected_metric_name, protected_instances),
    )
    datums += [datum(name, float(n), "Count") for name, n in counts if n is not None]
    return datums


class MetricPublishError(Exception):
    """PutMetricData failed after its bounded retries."""

    def __init__(self, cause: BaseException, attempts: int) -> None:
        cause = deadline_cause(cause)
        self.cause = cause
        self.attempts = attempts
        text = error_text(cause)
        if isinstance(cause, ReadTimeoutError | DeadlineExceeded):
            # The request went out; whether CloudWatch stored it is unknown.
            text += "; sent but unanswered, so not retried (CloudWatch may hold it)"
        super().__init__(f"{type(cause).__name__}: {text} ({attempts} attempts)")


PUBLISH_ATTEMPTS = 3
# Retried only when CloudWatch cannot have stored the datapoint: the connection
# never opened, or CloudWatch refused the call. A read timeout is NOT retried:
# the first request may have been stored, and a retry would publish the slot
# twice. A missing datapoint is safe for target tracking; a duplicate is not ours to make.
_NOT_STORED = (EndpointConnectionError, ConnectTimeoutError)
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServiceError",
    }
)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _NOT_STORED):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _RETRYABLE_CODES or status == 503
    return False


def metric_publish(
    *,
    spec: MetricSpec,
    timestamp: datetime,
    backlog: int,
    oldest_age_seconds: float | None,
    recovered: int | None = None,
    busy_instances: int | None = None,
    protected_instances: int | None = None,
    timeout_seconds: float = 0,
) -> int:
    """Publish the datums; return how many attempts it took."""
    datums = metric_datums_build(
        spec=spec,
        timestamp=timestamp,
        backlog=backlog,
        oldest_age_seconds=oldest_age_seconds,
        recovered=recovered,
        busy_instances=busy_instances,
        protected_instances=protected_instances,
    )
    return datums_publish(namespace=spec.namespace, datums=datums, timeout_seconds=timeout_seconds)


DATUMS_PER_CALL = 1000  # PutMetricData's limit


def datums_publish(
    *, namespace: str, datums: list[dict[str, Any]], timeout_seconds: float = 0
) -> int:
    """Publish datums to one namespace, in calls of at most 1,000; return the attempts
    it took. The first call that fails ends it (MetricPublishError): what it carried
    is not known to be stored, and nothing after it was sent."""
    client = cloudwatch_client()
    attempts = 0
    try:
        with deadline(timeout_seconds, "CloudWatch"):
            for first in range(0, len(datums), DATUMS_PER_CALL):
                chunk = datums[first : first + DATUMS_PER_CALL]
                tries = 0
                while True:
                    attempts += 1
                    tries += 1
                    try:
                        client.put_metric_data(Namespace=namespace, MetricData=chunk)  # type: ignore[arg-type]
                        break
                    except (BotoCoreError, ClientError) as exc:
                        if tries >= PUBLISH_ATTEMPTS or not _retryable(exc):
                            raise
                    # Full jitter, as botocore's standard mode: 0..0.2 s, then 0..0.4 s.
                    time.sleep(random.uniform(0, 0.2 * 2 ** (tries - 1)))
            return attempts
    except (BotoCoreError, ClientError, DeadlineExceeded) as exc:
        raise MetricPublishError(exc, attempts) from exc
