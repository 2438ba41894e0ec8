"""Why an AWS read failed, in words a person acts on (the admin and ``scaling_status``).

An exception class name ("EndpointConnectionError: ...") tells an operator what
broke inside botocore, not what to change. ``error_sentence`` maps the failures
an operator meets on a status page to one sentence each that names the setting,
the IAM document (``deploy/iam/<role>.json``) or the wait that fixes it. Anything
it does not know keeps ``error_one_line``'s ``Type: message``.
"""

from __future__ import annotations

import re

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from scaling.deadline import deadline_cause
from scaling.errors import error_one_line, error_text

# ClientError codes, as the query APIs (Auto Scaling, CloudWatch) and the JSON ones spell them.
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "SlowDown",
    }
)
CREDENTIALS_REFUSED = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "AuthFailure",
    }
)
# The operations the status role makes outside Auto Scaling (the rest are autoscaling:*).
_SERVICE_OF = {"DescribeAlarms": "cloudwatch", "GetMetricData": "cloudwatch"}
_ACTION_IN_MESSAGE = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z0-9]+)")


class GroupMissing(LookupError):
    """DescribeAutoScalingGroups answered, without the group."""

    def __init__(self, asg_name: str, region: str) -> None:
        super().__init__(f"group {asg_name!r} does not exist in region {region}")
        self.asg_name = asg_name
        self.region = region


def _endpoint(exc: Exception) -> str:
    kwargs = getattr(exc, "kwargs", {}) or {}
    return str(kwargs.get("endpoint_url") or "the AWS endpoint")


def _client_error_sentence(exc: ClientError, *, role: str) -> str | None:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    operation = exc.operation_name or "the call"
    document = f"deploy/iam/{role}.json"
    if code in ACCESS_DENIED:
        found = _ACTION_IN_MESSAGE.search(str(error.get("Message", "")))
        action = (
            found.group(1) if found else f"{_SERVICE_OF.get(operation, 'autoscaling')}:{operation}"
        )
        return f"the role lacks {action}: attach {document} to the role this host runs as"
    if code in THROTTLED:
        return (
            f"AWS is throttling {operation} on this account ({code}): wait a minute and "
            f"reload; if it lasts, find what else calls {operation}"
        )
    if code in CREDENTIALS_REFUSED:
        return (
            f"AWS refused this host's credentials ({code}): renew them, or give the "
            f"instance the {role} role ({document}) instead of keys"
        )
    return None


def error_sentence(exc: BaseException, *, role: str = "status", limit: int = 300) -> str:
    """One sentence that says why an AWS read failed and what to change.

    ``role`` names the IAM document the reader runs under (``deploy/iam/<role>.json``).
    """
    exc = deadline_cause(exc)
    document = f"deploy/iam/{role}.json"
    sentence: str | None = None
    if isinstance(exc, GroupMissing):
        sentence = (
            f"group {exc.asg_name} does not exist in region {exc.region}: "
            "check SCALING_ASG_NAME / AWS_REGION"
        )
    elif isinstance(exc, NoCredentialsError):
        sentence = (
            f"no AWS credentials on this host: give the instance the {role} role "
            f"({document}) or set AWS_PROFILE"
        )
    elif isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
        sentence = (
            f"the AWS credentials on this host are incomplete ({error_text(exc)}): set both "
            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or the {role} role"
        )
    elif isinstance(exc, NoRegionError):
        sentence = "no AWS region configured: set AWS_REGION"
    elif isinstance(exc, ConnectTimeoutError):
        sentence = (
            f"AWS at {_endpoint(exc)} did not accept a connection in time: check "
            "AWS_ENDPOINT_URL / network (a firewall or security group that drops packets)"
        )
    elif isinstance(exc, ReadTimeoutError):
        sentence = (
            f"AWS at {_endpoint(exc)} did not answer in time: reload in a minute; if it "
            "lasts, check the network and the AWS Health Dashboard"
        )
    elif isinstance(exc, ProxyConnectionError):
        proxy = (getattr(exc, "kwargs", {}) or {}).get("proxy_url", "the proxy")
        sentence = f"cannot reach the proxy {proxy}: check HTTPS_PROXY / network"
    elif isinstance(exc, SSLError):
        sentence = (
            f"TLS to {_endpoint(exc)} failed: check AWS_ENDPOINT_URL and the CA bundle "
            "(AWS_CA_BUNDLE)"
        )
    elif isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        sentence = f"cannot reach AWS at {_endpoint(exc)}: check AWS_ENDPOINT_URL / network"
    elif isinstance(exc, ClientError):
        sentence = _client_error_sentence(exc, role=role)
    if sentence is None:
        return error_one_line(exc, limit=limit)
    return sentence[:limit]
