"""scaling.audit.aws_errors: each AWS failure as one sentence a person acts on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from django.db import OperationalError

from scaling.audit.aws_errors import GroupMissing, error_sentence

IAM = Path(__file__).resolve().parents[2] / "deploy" / "iam"


def _client_error(code: str, operation: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _actions(document: str) -> set[str]:
    statements = json.loads((IAM / document).read_text())["Statement"]
    return {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


def test_no_credentials() -> None:
    assert error_sentence(NoCredentialsError()) == (
        "no AWS credentials on this host: give the instance the status role "
        "(deploy/iam/status.json) or set AWS_PROFILE"
    )


def test_partial_credentials() -> None:
    sentence = error_sentence(PartialCredentialsError(provider="env", cred_var="secret_key"))

    assert sentence.startswith("the AWS credentials on this host are incomplete (")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in sentence


def test_endpoint_unreachable() -> None:
    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")

    assert error_sentence(exc) == (
        "cannot reach AWS at http://127.0.0.1:9/: check AWS_ENDPOINT_URL / network"
    )


@pytest.mark.parametrize(
    ("operation", "message", "action"),
    [
        ("DescribePolicies", "", "autoscaling:DescribePolicies"),
        ("DescribeAlarms", "", "cloudwatch:DescribeAlarms"),
        (
            "DescribeAutoScalingGroups",
            "User: arn:aws:sts::123456789012:assumed-role/api/i-1 is not authorized to "
            "perform: autoscaling:DescribeAutoScalingGroups because no identity-based policy "
            "allows the autoscaling:DescribeAutoScalingGroups action",
            "autoscaling:DescribeAutoScalingGroups",
        ),
    ],
)
def test_access_denied_names_the_action_and_the_document(
    operation: str, message: str, action: str
) -> None:
    sentence = error_sentence(_client_error("AccessDenied", operation, message))

    assert sentence == (
        f"the role lacks {action}: attach deploy/iam/status.json to the role this host runs as"
    )
    # The document named is real and grants what is missing.
    assert action in _actions("status.json")


def test_access_denied_under_another_role_names_its_document() -> None:
    sentence = error_sentence(
        _client_error("AccessDeniedException", "PutScalingPolicy"), role="installer"
    )

    document = re.search(r"deploy/iam/(\S+\.json)", sentence)
    assert document is not None
    assert (IAM / document.group(1)).is_file()
    assert "autoscaling:PutScalingPolicy" in _actions(document.group(1))


def test_group_missing() -> None:
    assert error_sentence(GroupMissing("video-asg", "eu-west-1")) == (
        "group video-asg does not exist in region eu-west-1: check SCALING_ASG_NAME / AWS_REGION"
    )


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException", "RequestLimitExceeded"])
def test_throttling(code: str) -> None:
    sentence = error_sentence(_client_error(code, "DescribeAutoScalingGroups", "Rate exceeded"))

    assert sentence == (
        f"AWS is throttling DescribeAutoScalingGroups on this account ({code}): wait a minute "
        "and reload; if it lasts, find what else calls DescribeAutoScalingGroups"
    )


def test_connect_timeout() -> None:
    exc = ConnectTimeoutError(endpoint_url="https://autoscaling.eu-west-1.amazonaws.com/")

    assert error_sentence(exc) == (
        "AWS at https://autoscaling.eu-west-1.amazonaws.com/ did not accept a connection in "
        "time: check AWS_ENDPOINT_URL / network (a firewall or security group that drops "
        "packets)"
    )


def test_read_timeout() -> None:
    exc = ReadTimeoutError(endpoint_url="https://monitoring.eu-west-1.amazonaws.com/")

    assert error_sentence(exc) == (
        "AWS at https://monitoring.eu-west-1.amazonaws.com/ did not answer in time: reload in "
        "a minute; if it lasts, check the network and the AWS Health Dashboard"
    )


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "ExpiredToken", "SignatureDoesNotMatch"])
def test_credentials_refused(code: str) -> None:
    sentence = error_sentence(_client_error(code, "DescribePolicies"))

    assert sentence.startswith(f"AWS refused this host's credentials ({code}): renew them")


def test_no_region() -> None:
    assert error_sentence(NoRegionError()) == "no AWS region configured: set AWS_REGION"


def test_anything_else_keeps_its_type_and_message() -> None:
    assert error_sentence(OperationalError("connection refused")) == (
        "OperationalError: connection refused"
    )
    assert error_sentence(_client_error("ValidationError", "DescribePolicies", "bad name")) == (
        "ClientError: An error occurred (ValidationError) when calling the DescribePolicies "
        "operation: bad name"
    )


def test_limit_holds() -> None:
    assert len(error_sentence(NoCredentialsError(), limit=20)) == 20
