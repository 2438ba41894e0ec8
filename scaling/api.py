"""``scaling``'s public surface: all that a host app (here ``video``) may import.

Everything else under ``scaling`` is inside the app and may change. The host
implements the backlog port (``scaling.port``, named by SCALING_BACKLOG_SOURCE)
with the types below, and its worker API calls the two fleet questions:

- at claim, ``instance_protect_for_claim``: protect the claiming instance from
  scale-in before the claim answers (bounded, never raises);
- at renew, ``instance_draining``: is the lease's instance leaving the group.

The shared pieces a host's own code may reuse: one-line errors, integer
parsing, the command base that turns every failure into one line, the
constant-time key check, the SQS client (the one boto3 factory) and the job
queue's URL (SCALING_SQS_QUEUE_URL, the fallback queue: the same queue the
workers read).
"""

from __future__ import annotations

from scaling.audit.internal_auth import MAX_KEY_LENGTH, internal_key_refusal
from scaling.aws import sqs_client
from scaling.conf import QUEUE_URL_RE, internal_api_keys, parse_int, scaling_settings
from scaling.errors import error_one_line
from scaling.fleet.protection import instance_draining, instance_protect_for_claim
from scaling.management.base import OneLineErrorCommand
from scaling.port import (
    Backlog,
    BacklogSource,
    InstanceLeases,
    LeaseHooks,
    Recovery,
    WorkInProgress,
)


def job_queue_url() -> str:
    """The SQS queue the workers read ("" when none is configured)."""
    return scaling_settings().sqs_queue_url


__all__ = [
    "MAX_KEY_LENGTH",
    "QUEUE_URL_RE",
    "Backlog",
    "BacklogSource",
    "InstanceLeases",
    "LeaseHooks",
    "OneLineErrorCommand",
    "Recovery",
    "WorkInProgress",
    "error_one_line",
    "instance_draining",
    "instance_protect_for_claim",
    "internal_api_keys",
    "internal_key_refusal",
    "job_queue_url",
    "parse_int",
    "sqs_client",
]
