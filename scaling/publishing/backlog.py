"""Where the backlog is measured: the database first, SQS queue depth as fallback."""

from __future__ import annotations

import contextlib

from botocore.exceptions import BotoCoreError, ClientError
from django.db import DatabaseError, connection

from scaling.aws import sqs_client
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from video.selectors import Backlog, video_backlog_get


class BacklogUnavailable(Exception):
    """A source could not give a measured value."""


def backlog_measure_db(*, timeout_seconds: float) -> Backlog:
    try:
        with deadline(timeout_seconds, "the database"):
            return video_backlog_get()
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


def connection_drop() -> None:
    # Inside an atomic block (a test's transaction) closing would break the
    # caller's transaction; the tick itself never runs in one.
    if connection.in_atomic_block:
        return
    with contextlib.suppress(Exception):
        connection.close()
