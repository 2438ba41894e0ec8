"""A local AWS endpoint (moto's server) with the resources the product expects.

Used by ``make run`` when no real AWS is configured, and by the test suite.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from academy import defaults

LOCAL_REGION = defaults.AWS_REGION
LOCAL_QUEUE_NAME = defaults.LOCAL_QUEUE_NAME
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# One short attempt: moto is on loopback, and an outage is reported, not waited out.
_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1}
)
# Setting up, nothing to report to: moto builds a service's backend on its first call,
# which took over 5 s for EC2 on two busy cores (make soak failed at start so).
_SETUP_CONFIG = Config(
    connect_timeout=5, read_timeout=120, retries={"mode": "standard", "total_max_attempts": 3}
)


def port_free_get(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_wait(host: str, port: int, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:g} s")


def moto_server_start(
    host: str = "127.0.0.1", port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """moto's server, as `make run`'s ``aws`` process runs it (``devstack.awsserver``:
    scaling policies named per group, as AWS names them)."""
    port = port or port_free_get(host)
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.awsserver", "--host", host, "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_wait(host, port)
    except RuntimeError:
        process.kill()
        raise
    return process, f"http://{host}:{port}"


@contextlib.contextmanager
def moto_server(host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    process, url = moto_server_start(host, port)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def endpoint_is_local(url: str) -> bool:
    """Only an endpoint on this machine: the dev stack must never scale a real group."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


def local_client(
    service: str, endpoint_url: str, region: str = LOCAL_REGION, *, setup: bool = False
) -> Any:
    """The dev stack's one boto3 client: the local endpoint only (ValueError for any
    other), its fixed test credentials (it plays AWS: no IAM role of the app applies),
    one short attempt (``setup``: a patient one, for creating resources at start)."""
    if not endpoint_is_local(endpoint_url):
        raise ValueError(
            f"the dev stack talks to a local endpoint only (http://127.0.0.1:<port>), "
            f"got {endpoint_url!r}"
        )
    return boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    ).client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint_url, config=_SETUP_CONFIG if setup else _CLIENT_CONFIG
    )


def local_aws_bootstrap(
    endpoint_url: str,
    *,
    region: str = LOCAL_REGION,
    asg_name: str = defaults.SCALING_ASG_NAME,
    queue_name: str = LOCAL_QUEUE_NAME,
    min_size: int = 0,
    max_size: int = 10,
    desired: int = 0,
) -> dict[str, str]:
    """Create the SQS queue and the Auto Scaling group (idempotent); return the queue URL."""
    sqs = local_client("sqs", endpoint_url, region, setup=True)
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    ec2 = local_client("ec2", endpoint_url, region, setup=True)
    autoscaling = local_client("autoscaling", endpoint_url, region, setup=True)
    template_name = f"{asg_name}-template"
    with contextlib.suppress(ec2.exceptions.ClientError):
        ec2.create_launch_template(
            LaunchTemplateName=template_name,
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.small"},
        )
    existing = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    if not existing["AutoScalingGroups"]:
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=asg_name,
            LaunchTemplate={"LaunchTemplateName": template_name, "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            AvailabilityZones=zones,
        )
    return {"queue_url": queue_url, "region": region, "asg_name": asg_name}
