"""The job queue as the worker sees it: SQS messages ``{"video_id": N}``. Django-free;
boto3 is imported only when a queue is made."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .client import MAX_VISIBILITY_SECONDS, error_one_line


class QueueError(Exception):
    """An SQS call failed; ``transient`` says whether waiting can fix it."""

    def __init__(self, message: str, *, transient: bool, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


@dataclass(frozen=True)
class JobMessage:
    message_id: str
    receipt_handle: str
    body: str


def video_id_parse(body: str) -> int | None:
    """The video id of a job message ``{"video_id": N}``, or None for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    video_id = data.get("video_id")
    if isinstance(video_id, bool) or not isinstance(video_id, int) or video_id <= 0:
        return None
    return video_id


# Errors that no amount of waiting fixes: the worker should stop and say so.
_FATAL_SQS_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAddress",
    }
)
# A message that is already gone or back in the queue: nothing left to do.
_GONE_SQS_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "InvalidParameterValue", "AWS.SimpleQueueService.MessageNotInflight"}
)


class SqsJobQueue:
    """Receive, delete and hold job messages on one SQS queue.

    The read timeout outlasts the long poll, so a quiet queue is not mistaken
    for a network failure.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        wait_seconds: int = 20,
        client: Any = None,
    ) -> None:
        self.queue_url = queue_url
        self.wait_seconds = max(0, min(20, wait_seconds))
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=3,
                read_timeout=self.wait_seconds + 10,
                retries={"mode": "standard", "total_max_attempts": 3},
            )
            client = boto3.session.Session().client(
                "sqs", region_name=region, endpoint_url=endpoint_url, config=config
            )
        self._client = client

    def receive(
        self, *, visibility_seconds: int, wait_seconds: int | None = None
    ) -> JobMessage | None:
        """One message, or None after ``wait_seconds`` (default: the queue's long poll)."""
        wait = self.wait_seconds if wait_seconds is None else max(0, min(20, wait_seconds))
        answer = self._call(
            "receive_message",
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=wait,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, visibility_seconds)),
        )
        for message in answer.get("Messages", []):
            return JobMessage(
                message_id=str(message.get("MessageId", "")),
                receipt_handle=str(message["ReceiptHandle"]),
                body=str(message.get("Body", "")),
            )
        return None

    def delete(self, message: JobMessage) -> bool:
        """False when the message was already gone (deleted, or received again elsewhere)."""
        return self._gone_ok(
            "delete_message", QueueUrl=self.queue_url, ReceiptHandle=message.receipt_handle
        )

    def visibility_change(self, message: JobMessage, seconds: int) -> bool:
        """Keep the message in flight ``seconds`` more (0: visible again at once)."""
        return self._gone_ok(
            "change_message_visibility",
            QueueUrl=self.queue_url,
            ReceiptHandle=message.receipt_handle,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY_SECONDS, seconds)),
        )

    def _gone_ok(self, operation: str, **params: Any) -> bool:
        try:
            self._call(operation, **params)
        except QueueError as exc:
            if exc.code in _GONE_SQS_CODES:
                return False
            raise
        return True

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return dict(getattr(self._client, operation)(**params))
        except NoCredentialsError as exc:
            raise QueueError(f"SQS {operation}: no AWS credentials", transient=False) from exc
        except ClientError as exc:
            code = _code(exc)
            message = f"SQS {operation}: {code}: {exc.response.get('Error', {}).get('Message', '')}"
            raise QueueError(message, transient=code not in _FATAL_SQS_CODES, code=code) from exc
        except BotoCoreError as exc:
            raise QueueError(f"SQS {operation}: {error_one_line(exc)}", transient=True) from exc


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))
