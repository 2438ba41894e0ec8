"""This instance's id from the EC2 instance metadata service (IMDSv2). Django-free."""

from __future__ import annotations

import http.client
import os

from .client import INSTANCE_ID_RE, _connection

IMDS_BASE_URL = "http://169.254.169.254"
IMDS_TIMEOUT = 1.0


def instance_id_lookup(base_url: str | None = None, timeout: float = IMDS_TIMEOUT) -> str | None:
    """This EC2 instance's id from the metadata service (IMDSv2), or None off EC2.

    Honours ``AWS_EC2_METADATA_DISABLED=true`` as the AWS SDKs do, so a test or a
    laptop never waits for a link-local address that nothing answers.
    """
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
        return None
    try:
        conn, prefix = _connection(base_url or IMDS_BASE_URL, timeout)
        try:
            conn.request(
                "PUT",
                f"{prefix}/latest/api/token",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
            )
            response = conn.getresponse()
            token = response.read(4096).decode().strip()
            if response.status != 200 or not token:
                return None
            conn.request(
                "GET",
                f"{prefix}/latest/meta-data/instance-id",
                headers={"X-aws-ec2-metadata-token": token},
            )
            response = conn.getresponse()
            instance_id = response.read(4096).decode().strip()
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, UnicodeDecodeError, ValueError):
        return None
    if response.status != 200 or not INSTANCE_ID_RE.match(instance_id):
        return None
    return instance_id


# --- The job queue (SQS). boto3 is imported here only. ---------------------------
