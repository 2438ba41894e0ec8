"""The worker's own SQS calls, held against deploy/iam/worker.json.

The worker client is Django-free and builds its own boto3 client, so the
session-wide observer in tests/conftest.py never sees it; this test listens on
that client directly while the queue does everything a worker does.
"""

from __future__ import annotations

from typing import Any

from tests.deploy.test_iam_documents import Call, _document_actions, iam_violations
from video.jobs import video_job_send
from video.worker.queue import SqsJobQueue


def test_every_sqs_call_of_a_worker_is_allowed_by_the_worker_document(
    aws: dict[str, str],
) -> None:
    queue = SqsJobQueue(
        aws["queue_url"], region=aws["region"], endpoint_url=aws["endpoint"], wait_seconds=1
    )
    calls: list[Call] = []

    def observe(http_response: Any, parsed: Any, model: Any, **kwargs: Any) -> None:
        params = kwargs.get("context", {}).get("worker_params", {})
        calls.append(("worker", "sqs", model.name, params, http_response.status_code))

    def remember(params: Any, context: Any, **kwargs: Any) -> None:
        context["worker_params"] = dict(params)

    queue._client.meta.events.register("provide-client-params.sqs.*", remember)
    queue._client.meta.events.register("after-call.sqs.*", observe)
    assert video_job_send(7, queue_url=aws["queue_url"])

    message = queue.receive(visibility_seconds=30)
    assert message is not None
    assert queue.visibility_change(message, 60)
    assert queue.delete(message)

    assert {operation for _, _, operation, _, _ in calls} == {
        "ReceiveMessage",
        "ChangeMessageVisibility",
        "DeleteMessage",
    }
    assert iam_violations(calls) == []
    assert _document_actions("worker") == {f"sqs:{op}" for _, _, op, _, _ in calls}
