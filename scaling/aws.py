"""The only place that constructs boto3 clients.

Timeouts are short and retries bounded so that one publishing tick, with its
retries, always ends inside its slot (10 s at the shortest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from scaling.conf import scaling_settings

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

# connect 1 s + read 2 s, at most 3 attempts with standard (jittered) backoff:
# worst case about 3 * 3 s plus a second of backoff for one call.
PUBLISH_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "total_max_attempts": 3},
)
# The fallback read gets a single retry: it only runs when the database already cost time.
FALLBACK_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "total_max_attempts": 2},
)
# Commands run by a person can wait longer.
ADMIN_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 3},
)


def _client(service: str, config: Config) -> Any:
    conf = scaling_settings()
    kwargs: dict[str, Any] = {"region_name": conf.region, "config": config}
    if conf.endpoint_url:
        kwargs["endpoint_url"] = conf.endpoint_url
    return boto3.session.Session().client(service, **kwargs)  # type: ignore[call-overload]


def cloudwatch_client(*, for_command: bool = False) -> CloudWatchClient:
    return _client("cloudwatch", ADMIN_CONFIG if for_command else PUBLISH_CONFIG)


def sqs_client(*, for_command: bool = False) -> SQSClient:
    return _client("sqs", ADMIN_CONFIG if for_command else FALLBACK_CONFIG)


def autoscaling_client() -> AutoScalingClient:
    return _client("autoscaling", ADMIN_CONFIG)


def ssm_client() -> Any:
    return _client("ssm", ADMIN_CONFIG)
