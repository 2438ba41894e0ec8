"""The only place that constructs boto3 clients.

Timeouts are short and retries bounded so that one publishing tick, with its
retries, always ends inside its slot (10 s at the shortest).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError

from scaling.conf import scaling_settings

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient


def _config(*, connect_timeout: int, read_timeout: int, attempts: int) -> Config:
    """Timeouts in seconds; ``attempts`` counts the first call (1: no retry)."""
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
    )


# Each is an object of its own (clients are cached by the config's identity).
# connect 1 s + read 2 s, one attempt: PutMetricData is not idempotent, so
# scaling.publishing.cloudwatch retries it itself, only where nothing can have been stored.
PUBLISH_CONFIG = _config(connect_timeout=1, read_timeout=2, attempts=1)
# The fallback read gets a single retry: it only runs when the database already cost time.
FALLBACK_CONFIG = _config(connect_timeout=1, read_timeout=2, attempts=2)
# Commands run by a person can wait longer.
ADMIN_CONFIG = _config(connect_timeout=3, read_timeout=10, attempts=3)
# A web page waits for no outage: one short attempt, then the page says so.
PAGE_CONFIG = _config(connect_timeout=1, read_timeout=2, attempts=1)
# SetInstanceProtection inside a worker's claim: the claim waits for it, so one
# attempt of 2 s at worst (connect 1 + read 1); the reconciler catches up after.
CLAIM_PROTECT_CONFIG = _config(connect_timeout=1, read_timeout=1, attempts=1)
# The fleet reconciler, once per slot: one attempt; throttling waits for the next slot.
FLEET_CONFIG = _config(connect_timeout=1, read_timeout=2, attempts=1)


# Who makes the call: each role has its own least-privilege document in deploy/iam/<role>.json.
AwsRole = Literal["publisher", "installer", "status", "ssm"]
# (role, service, operation, api params, http status): see aws_call_observers.
AwsCallObserver = Callable[[str, str, str, Mapping[str, Any], int], None]

# Opt-in: observers added here see every call that reached an endpoint from a
# client built afterwards. The test suite uses it to hold each call against the
# IAM document of the role that made it. Empty in production: no handler is registered.
aws_call_observers: list[AwsCallObserver] = []


# Clients are thread-safe and costly to build (a new session reads the service
# models from disk): the publisher keeps one per (service, config, endpoint)
# for the life of the process instead of building one every tick.
_clients: dict[tuple[str, int, str, str | None, str], Any] = {}


def _client(service: str, config: Config, *, role: AwsRole) -> Any:
    conf = scaling_settings()
    key = (service, id(config), conf.region, conf.endpoint_url, role)
    if not aws_call_observers and key in _clients:
        return _clients[key]
    kwargs: dict[str, Any] = {"region_name": conf.region, "config": config}
    if conf.endpoint_url:
        kwargs["endpoint_url"] = conf.endpoint_url
    client = boto3.session.Session().client(service, **kwargs)  # type: ignore[call-overload]
    if aws_call_observers:
        _calls_observe(client, role)
    else:
        _clients[key] = client
    return client


def _calls_observe(client: Any, role: str) -> None:
    def params_keep(params: Mapping[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["academy_api_params"] = dict(params)
        context["academy_operation"] = kwargs["model"].name

    def call_report(http_response: Any, model: Any, context: dict[str, Any], **kwargs: Any) -> None:
        params = context.get("academy_api_params", {})
        for observer in list(aws_call_observers):
            observer(
                role,
                model.service_model.service_name,
                model.name,
                params,
                http_response.status_code,
            )

    def error_report(exception: Exception, context: dict[str, Any], **kwargs: Any) -> None:
        # An answer that could not be parsed still reached the endpoint; a refused
        # connection or a timeout did not, and no IAM decision was made for it.
        if isinstance(exception, BotoConnectionError | HTTPClientError):
            return
        for observer in list(aws_call_observers):
            observer(
                role,
                service_name,
                context.get("academy_operation", "?"),
                context.get("academy_api_params", {}),
                0,
            )

    service_name = client.meta.service_model.service_name
    client.meta.events.register("before-parameter-build", params_keep)
    client.meta.events.register("after-call", call_report)
    client.meta.events.register("after-call-error", error_report)


def aws_credentials_present() -> bool:
    """Whether boto3 finds credentials (environment, profile or instance role)."""
    return boto3.session.Session().get_credentials() is not None


def cloudwatch_client(
    *, for_command: bool = False, role: AwsRole = "publisher"
) -> CloudWatchClient:
    return _client("cloudwatch", ADMIN_CONFIG if for_command else PUBLISH_CONFIG, role=role)


def sqs_client(*, for_command: bool = False) -> SQSClient:
    return _client("sqs", ADMIN_CONFIG if for_command else FALLBACK_CONFIG, role="publisher")


def autoscaling_client(*, role: AwsRole = "installer", for_page: bool = False) -> AutoScalingClient:
    return _client("autoscaling", PAGE_CONFIG if for_page else ADMIN_CONFIG, role=role)


def fleet_client(*, for_claim: bool = False) -> AutoScalingClient:
    """The API role's Auto Scaling client: instance protection and lifecycle actions
    (scaling.fleet), held to deploy/iam/publisher.json."""
    return _client(
        "autoscaling", CLAIM_PROTECT_CONFIG if for_claim else FLEET_CONFIG, role="publisher"
    )


def ssm_client() -> Any:
    return _client("ssm", ADMIN_CONFIG, role="ssm")
