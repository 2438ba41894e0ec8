"""Where the backlog is measured: the host's backlog source (scaling.port) first, SQS
queue depth as the fallback."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from django.db import DatabaseError

from scaling.aws import sqs_client
from scaling.database import connection_drop
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from scaling.port import Backlog, backlog_source


class BacklogUnavailable(Exception):
    """A source could not give a measured value."""


def backlog_measure_db(*, timeout_seconds: float) -> Backlog:
    try:
        with deadline(timeout_seconds, "the database"):
            return backlog_source().backlog_get()
    except (DatabaseError, DeadlineExceeded) as exc:
        # The connection may be half-way through a hung query: drop it so the
        # next use starts clean instead of waiting on the same socket.
        connection_drop()
        raise BacklogUnavailable(error_one_line(exc)) from exc


def backlog_measure_sqs(*, queue_url: str, timeout_seconds: float = 0) -> int:
    if not queue_url:
        raise BacklogUnavailable("no SCALING_SQS_QUEUE_URL configured")
    try:
        with deadline(timeout_seconds, "SQS"):
            response = sqs_client().get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        attributes = response["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    except (BotoCoreError, ClientError, KeyError, ValueError, DeadlineExceeded) as exc:
        raise BacklogUnavailable(error_one_line(exc)) from exc
