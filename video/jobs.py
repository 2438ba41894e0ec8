"""Job messages: a wake-up on the SQS queue for each video that becomes UPLOADED.

The database row is the truth; the message only tells a worker to come and
claim. So a message is sent after the transaction commits (never for a change
that was rolled back), only when ``SCALING_SQS_QUEUE_URL`` is set, and a failure
to send is logged, never raised into the caller: the video stays UPLOADED and
counts as backlog, and the next recovery or a worker's poll finds it. A
duplicate message is harmless: the claim refuses.
"""

from __future__ import annotations

import json
import logging
from functools import partial

from django.db import transaction

from scaling.api import error_one_line, job_queue_url, sqs_client

logger = logging.getLogger("video.jobs")


def video_job_message(video_id: int) -> str:
    """The message body a worker receives: ``{"video_id": N}``."""
    return json.dumps({"video_id": video_id})


def video_job_send_on_commit(video_id: int) -> None:
    """Send the job message for ``video_id`` once the current transaction commits.

    Outside a transaction (autocommit) it is sent at once. Does nothing when no
    queue is configured.
    """
    queue_url = job_queue_url()
    if not queue_url:
        return
    transaction.on_commit(partial(video_job_send, video_id, queue_url=queue_url), robust=True)


def video_job_send(video_id: int, *, queue_url: str) -> bool:
    """Send one job message now; True when SQS took it. Never raises."""
    try:
        sqs_client().send_message(QueueUrl=queue_url, MessageBody=video_job_message(video_id))
    except Exception as exc:  # any failure: the row is the truth, the message a wake-up
        logger.warning(
            "Video job message not sent | video_id=%s error=%s", video_id, error_one_line(exc)
        )
        return False
    return True
