"""No work stranded without a message: real workers, real API, moto's SQS.

The rows are the truth and a job message only a wake-up; when one is lost (a
purge, a dead-letter queue, a send that failed after the commit) the workers
still find the video through claim-next. Same stack and short settings as
test_video_workers.py (its ``workers`` fixture and log readers).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from tests.integration import test_video_workers
from tests.integration.test_video_workers import (
    claims_read,
    no_traceback,
    overlapping,
    polling_wait,
    summary,
)
from tests.support.stack import Stack, wait_for
from video.models import Video, VideoStatus
from video.services import video_upload

pytestmark = [pytest.mark.integration]

REGION = "ap-northeast-2"
# The same fixture as test_video_workers.py's: the worker key, the short video settings.
workers = test_video_workers.workers


def sqs_client(aws: dict[str, str]) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=aws["endpoint"])


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attrs[names[0]]), int(attrs[names[1]])


def api_counts(stack: Stack) -> tuple[Counter[int], Counter[int], int]:
    """From the API's log: claims and READY finishes per video, claims without a message."""
    log = stack.log("api")
    claimed = Counter(int(i) for i in re.findall(r"Video claimed \| video_id=(\d+)", log))
    ready = Counter(
        int(i) for i in re.findall(r"Video finished \| video_id=(\d+) status=READY", log)
    )
    return claimed, ready, len(re.findall(r"Video claimed without a message", log))


def idle_wait(stack: Stack, workers: int) -> None:
    """Until each worker has asked claim-next at start and heard 204 (gunicorn's access
    log): it long-polls now, so the burst comes to it through messages, not claim-next."""
    wait_for(
        lambda: stack.log("api").count('/video/claim-next/ HTTP/1.1" 204') >= workers,
        timeout=30,
        interval=0.1,
        what=f"{workers} workers idle",
    )


def test_a_queue_purged_mid_burst_strands_nothing_and_nothing_is_done_twice(
    workers: Stack, aws: dict[str, str]
) -> None:
    stack, sqs = workers, sqs_client(aws)
    api = stack.gunicorn_start()
    names = ("vw-1", "vw-2")
    for n, name in enumerate(names, 1):
        stack.video_worker_start(name, api_url=api, instance_id=f"i-purge{n}", hold_seconds=1)
    polling_wait(stack, *names)
    idle_wait(stack, len(names))

    ids = [video_upload(title=f"Lecture {i}").pk for i in range(16)]
    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() >= 4,
        timeout=30,
        interval=0.1,
        what="4 videos READY",
    )
    # Counted before the purge: just after it, the workers are already taking some.
    # Each video claimed without a message was one of these (the rest were in flight).
    stranded = Video.objects.filter(pk__in=ids, status=VideoStatus.UPLOADED).count()
    sqs.purge_queue(QueueUrl=aws["queue_url"])
    purged_at = time.time()
    # Read after the purge (so it over-counts, never under-counts, those before it).
    claimed_next_early = api_counts(stack)[2]
    assert stranded >= 6, "the purge should leave videos without their messages"
    assert queue_counts(sqs, aws["queue_url"]) == (0, 0)

    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() == 16,
        timeout=60,
        interval=0.2,
        what="16 videos READY",
    )
    last_ready = max(v.status_changed_at for v in Video.objects.filter(pk__in=ids))
    after_purge = last_ready.timestamp() - purged_at

    for name in names:
        stack.send_signal(name, signal.SIGTERM)
    for name in names:
        assert stack.wait_exit(name, timeout=20) == 0, stack.log(name)[-3000:]
    summaries = {name: summary(stack, name) for name in names}
    totals = {k: sum(s[k] for s in summaries.values()) for k in ("videos", "ready", "claimed_next")}
    assert totals["videos"] == totals["ready"] == 16, summaries
    # claim-next takes only videos with no message the worker could see: those the
    # purge left (at most `stranded`), and those an empty receive sent a worker to the
    # database for before the count (a receive that came back empty just before the
    # burst's message arrived; that message is later refused, or purged). CI saw 7
    # with 6 stranded, so the early ones are counted apart.
    refused = sum(s["refused"] for s in summaries.values())
    bound = stranded + claimed_next_early
    assert 4 <= totals["claimed_next"] <= bound, (stranded, claimed_next_early, summaries)
    assert {(s["failed"], s["released"], s["lost"]) for s in summaries.values()} == {(0, 0, 0)}
    # A message a worker received just before the purge, for a video the other worker
    # took through claim-next before this one claimed it: refused (taken) and deleted.
    assert refused <= len(names), summaries
    # Each video READY after one claim; in the API's log, claimed and finished once each.
    rows = Video.objects.filter(pk__in=ids).values_list("status", "attempts")
    assert set(rows) == {("READY", 1)}
    claimed, ready, without_message = api_counts(stack)
    assert claimed == ready == Counter(ids)
    assert without_message == totals["claimed_next"]
    claims = [c for name in names for c in claims_read(stack, name)]
    assert sorted(c.video_id for c in claims) == sorted(ids)
    assert overlapping(claims) == []
    no_traceback(stack, "api", *names)
    split = ", ".join(f"{n} {s['claimed_next']}/{s['ready']}" for n, s in summaries.items())
    print(
        f"\npurge with {stranded} videos waiting: last READY {after_purge:.1f} s after it; "
        f"{totals['claimed_next']} claimed without a message ({split})"
    )


def test_a_dead_lettered_message_still_gets_its_video_done_once(
    workers: Stack, aws: dict[str, str]
) -> None:
    """maxReceiveCount 1: a consumer that received the message and died (the test, here)
    used up its receives; the next receive moves it to the dead-letter queue (moto does
    as SQS does). The video is done through claim-next; redriven later, the message is
    refused ("done") and deleted."""
    stack, sqs = workers, sqs_client(aws)
    queue_url = aws["queue_url"]
    dlq_url = sqs.create_queue(QueueName="academy-video-jobs-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "1"}
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"RedrivePolicy": json.dumps(policy)})
    api = stack.gunicorn_start()

    video = video_upload(title="Lecture")
    received = sqs.receive_message(QueueUrl=queue_url, VisibilityTimeout=1, WaitTimeSeconds=5)
    assert [json.loads(m["Body"]) for m in received["Messages"]] == [{"video_id": video.pk}]
    time.sleep(1.2)  # the receiver died: its message is visible again, its receive used up

    started = time.monotonic()
    stack.video_worker_start("vw-dlq", api_url=api, instance_id="i-dlq", hold_seconds=1)
    wait_for(
        lambda: Video.objects.filter(pk=video.pk, status=VideoStatus.READY).exists(),
        timeout=40,
        interval=0.2,
        what="the video READY",
    )
    took = time.monotonic() - started
    assert queue_counts(sqs, dlq_url) == (1, 0), "the message should be in the dead-letter queue"
    assert queue_counts(sqs, queue_url) == (0, 0)
    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.attempts, row.lease_instance_id) == ("READY", 1, "i-dlq")

    # An operator redrives the dead-letter queue: the worker is told "done" and deletes it.
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=5)["Messages"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=dead["Body"])
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=dead["ReceiptHandle"])
    wait_for(
        lambda: f"video {video.pk} not claimed (done" in stack.log("vw-dlq"),
        timeout=30,
        interval=0.2,
        what="the redriven message refused",
    )
    wait_for(lambda: queue_counts(sqs, queue_url) == (0, 0), timeout=10, what="the message deleted")

    stack.send_signal("vw-dlq", signal.SIGTERM)
    assert stack.wait_exit("vw-dlq", timeout=20) == 0, stack.log("vw-dlq")[-3000:]
    result = summary(stack, "vw-dlq")
    assert (result["videos"], result["claimed_next"], result["ready"], result["refused"]) == (
        1,
        1,
        1,
        1,
    )
    claimed, ready, without_message = api_counts(stack)
    assert (claimed, ready, without_message) == (Counter([video.pk]), Counter([video.pk]), 1)
    assert Video.objects.get(pk=video.pk).attempts == 1
    no_traceback(stack, "api", "vw-dlq")
    print(f"\ndead-lettered message: video READY {took:.1f} s after the worker started")


def test_videos_uploaded_while_no_queue_was_configured_are_done_by_a_new_worker(
    workers: Stack, settings: Any
) -> None:
    """The `make run` case: no message was ever sent; a worker that starts (a scale-out)
    looks at the database before its first long poll."""
    stack = workers
    api = stack.gunicorn_start()
    settings.SCALING_SQS_QUEUE_URL = ""  # this process uploads with no queue configured
    ids = [video_upload(title=f"Lecture {i}").pk for i in range(3)]

    started = time.monotonic()
    stack.video_worker_start("vw-new", api_url=api, instance_id="i-new", hold_seconds=0.2)
    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() == 3,
        timeout=30,
        interval=0.2,
        what="3 videos READY",
    )
    took = time.monotonic() - started
    # Oldest first, each once.
    claims = claims_read(stack, "vw-new")
    assert [c.video_id for c in claims] == ids
    assert set(Video.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}
    assert "polls" in stack.log("vw-new")
    no_traceback(stack, "api", "vw-new")
    print(f"\n3 videos with no message: READY {took:.1f} s after a worker started")
