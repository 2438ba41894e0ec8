"""The dev stack's one boto3 client factory: loopback only, test credentials, one short try."""

from __future__ import annotations

import pytest

from devstack.localaws import LOCAL_CREDENTIALS, local_client


@pytest.mark.parametrize(
    "endpoint",
    ["", "https://autoscaling.ap-northeast-2.amazonaws.com", "http://10.0.0.5:5000"],
)
def test_the_client_refuses_an_endpoint_off_this_machine(endpoint: str) -> None:
    with pytest.raises(ValueError, match="local endpoint only"):
        local_client("autoscaling", endpoint)


def test_the_client_has_the_test_credentials_and_one_short_attempt() -> None:
    client = local_client("autoscaling", "http://127.0.0.1:9", "ap-northeast-2")

    credentials = client._request_signer._credentials
    assert credentials.access_key == LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1, 5)
    assert config.retries["total_max_attempts"] == 1


def test_the_setup_client_waits_for_a_cold_backend() -> None:
    """Creating the queue and the group at start waits for moto to build its backends."""
    client = local_client("ec2", "http://127.0.0.1:9", setup=True)

    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 120)
    assert config.retries["total_max_attempts"] == 3
    with pytest.raises(ValueError, match="local endpoint only"):
        local_client("ec2", "http://10.0.0.5:5000", setup=True)
