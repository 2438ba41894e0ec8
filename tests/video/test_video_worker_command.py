"""The worker loop (moto's in-process SQS, a fake worker API) and ``manage.py video_worker``.

The fake API keeps each video's state the way the contract describes it, so a
test reads what the worker did from the calls it made and the state it left.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command
from moto import mock_aws

from video.management.commands import video_worker as command_module
from video.worker.client import WorkerApiClient
from video.worker.jobs import JobInterrupted, fail_job, hold_job
from video.worker.loop import Job, RetryPolicy, VideoWorker, WorkerFatal, WorkerSummary
from video.worker.queue import SqsJobQueue

KEY = "worker-key-for-tests"
REGION = "ap-northeast-2"
BASE_DIR = Path(__file__).resolve().parents[2]
PATH_RE = re.compile(
    r"^/api/v1/internal/video/(?:(\d+)/(claim|renew|finish|release)|(claim-next))/$"
)
DB_DOWN = (503, {"error": "The database is unavailable."})
GATEWAY_DOWN = (502, b"<html>502 Bad Gateway</html>")


# --- A fake worker API -------------------------------------------------------


@dataclass
class FakeVideo:
    status: str = "UPLOADED"
    token: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class FakeApi:
    url: str = ""
    lease_seconds: float = 1.0
    renew_seconds: float = 0.05
    drain: bool = False
    videos: dict[int, FakeVideo] = field(default_factory=dict)
    calls: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    # Answers given before the normal ones, per action, in order: (status, body).
    script: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def actions(self) -> list[str]:
        return [action for action, _, _ in self.calls]

    def answer(self, action: str, video_id: int, body: dict[str, Any], key: str) -> tuple[int, Any]:
        with self.lock:
            self.calls.append((action, video_id, body))
            if key != KEY:
                return 403, {"error": "Missing or wrong X-Worker-Key."}
            if self.script.get(action):
                return self.script[action].pop(0)
            if action == "claim-next":  # the lowest id stands for the longest waiting
                waiting = sorted(i for i, v in self.videos.items() if v.status == "UPLOADED")
                return self._claim(waiting[0], self.videos[waiting[0]]) if waiting else (204, b"")
            video = self.videos.get(video_id)
            if video is None:
                return 404, {"error": f"No video {video_id}."}
            if action == "claim":
                return self._claim(video_id, video)
            if body.get("token") != video.token or video.status != "PROCESSING":
                return 409, {"error": "The lease is lost.", "reason": "lease-lost"}
            if action == "renew":
                return 200, {
                    "video_id": video_id,
                    "lease_expires_at": "2030-01-01T00:00:00+00:00",
                    "drain": self.drain,
                }
            video.token = None
            if action == "finish":
                video.status, video.error = body["status"], body.get("error")
            else:
                video.status = "UPLOADED"
            return 200, {"video_id": video_id, "status": video.status}

    def _claim(self, video_id: int, video: FakeVideo) -> tuple[int, Any]:
        if video.status != "UPLOADED":
            reason = {"PROCESSING": "taken", "READY": "done", "FAILED": "failed"}[video.status]
            return 409, {"error": f"Video {video_id} is {video.status}.", "reason": reason}
        video.status, video.attempts = "PROCESSING", video.attempts + 1
        video.token = f"token-{video_id}-{video.attempts}"
        return 200, {
            "video_id": video_id,
            "token": video.token,
            "lease_expires_at": "2030-01-01T00:00:00+00:00",
            "lease_seconds": self.lease_seconds,
            "renew_seconds": self.renew_seconds,
            "attempts": video.attempts,
            "protected": True,
        }


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            match = PATH_RE.match(self.path)
            assert match, self.path
            status, answer = fake.answer(
                match[2] or match[3], int(match[1] or 0), body, self.headers.get("X-Worker-Key", "")
            )
            raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield fake
    server.shutdown()
    server.server_close()


# --- SQS (moto, in process) --------------------------------------------------


class RecordingQueue(SqsJobQueue):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.visibility: list[int] = []
        self.waits: list[int | None] = []  # each receive's wait (None: the long poll)

    def receive(self, *, visibility_seconds: int, wait_seconds: int | None = None) -> Any:
        self.waits.append(wait_seconds)
        return super().receive(visibility_seconds=visibility_seconds, wait_seconds=wait_seconds)

    def visibility_change(self, message: Any, seconds: int) -> bool:
        self.visibility.append(seconds)
        return super().visibility_change(message, seconds)


@dataclass
class Sqs:
    client: Any
    url: str

    def send(self, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.client.send_message(QueueUrl=self.url, MessageBody=text)

    def counts(self) -> tuple[int, int]:
        """(visible, in flight)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)
        return int(attrs["Attributes"][names[0]]), int(attrs["Attributes"][names[1]])

    def queue(self, wait_seconds: int = 1) -> RecordingQueue:
        return RecordingQueue(self.url, region=REGION, wait_seconds=wait_seconds)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Sqs]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    settings.AWS_ENDPOINT_URL = None
    settings.AWS_REGION = REGION
    with mock_aws():
        client = boto3.client("sqs", region_name=REGION)
        yield Sqs(client, client.create_queue(QueueName="academy-video-jobs")["QueueUrl"])


def worker_make(fake: FakeApi, queue: RecordingQueue, job: Job, **kwargs: Any) -> VideoWorker:
    return VideoWorker(
        api=WorkerApiClient(fake.url, KEY, timeout=2),
        queue=queue,
        job=job,
        instance_id="i-test",
        worker_id="test-host:1",
        lease_seconds=1,
        retry=RetryPolicy(attempts=3, base_seconds=0.01, cap_seconds=0.05),
        idle_cap_seconds=0.05,
        **kwargs,
    )


def run_until(worker: VideoWorker, done: Callable[[], bool], timeout: float = 10) -> WorkerSummary:
    """Runs the worker in a thread until ``done``, then asks it to stop (as SIGTERM does)."""
    result: list[WorkerSummary] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.shutdown_request("test over")
    thread.join(timeout)
    assert not thread.is_alive(), "the worker did not stop"
    return result[0]


@dataclass
class JobRecord:
    runs: list[int] = field(default_factory=list)
    stopped: list[bool] = field(default_factory=list)


def recorded(job: Job, record: JobRecord) -> Job:
    def run(video_id: int, stop: threading.Event) -> None:
        record.runs.append(video_id)
        try:
            job(video_id, stop)
        finally:
            record.stopped.append(stop.is_set())

    return run


def hold(seconds: float) -> Job:
    return functools.partial(hold_job, seconds=seconds)


# --- The loop ----------------------------------------------------------------


def test_a_video_is_claimed_renewed_finished_and_its_message_deleted(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo()
    sqs.send({"video_id": 1})
    queue = sqs.queue()

    summary = worker_make(fake_api, queue, hold(0.3), max_videos=1).run()

    assert (summary.videos, summary.ready, summary.exit_reason) == (1, 1, "max-videos")
    actions = fake_api.actions()
    assert actions[0] == "claim"
    assert actions[-1] == "finish"
    assert set(actions[1:-1]) == {"renew"}
    assert len(actions) >= 4
    assert fake_api.calls[0][2] == {"instance_id": "i-test", "worker_id": "test-host:1"}
    assert fake_api.calls[-1][2]["status"] == "READY"
    assert fake_api.videos[1].status == "READY"
    # Each renew kept the message in flight for two lease periods; then it was deleted.
    assert queue.visibility
    assert set(queue.visibility) == {2}
    assert sqs.counts() == (0, 0)


def test_a_job_that_raises_finishes_failed_with_its_first_line(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    sqs.send({"video_id": 1})

    summary = worker_make(fake_api, sqs.queue(), fail_job, max_videos=1).run()

    assert (summary.failed, summary.ready) == (1, 0)
    assert fake_api.videos[1].status == "FAILED"
    assert fake_api.videos[1].error == "RuntimeError: video 1: fail_job fails every video"
    assert sqs.counts() == (0, 0)


def test_a_lease_lost_mid_job_stops_the_job_and_finishes_nothing(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo()
    fake_api.script["renew"] = [(409, {"error": "The lease is lost.", "reason": "lease-lost"})]
    sqs.send({"video_id": 1})
    record = JobRecord()
    started = time.monotonic()

    summary = worker_make(fake_api, sqs.queue(), recorded(hold(5), record), max_videos=1).run()

    assert time.monotonic() - started < 3
    assert (summary.lost, summary.ready, summary.failed) == (1, 0, 0)
    assert record.stopped == [True]
    assert "finish" not in fake_api.actions()
    assert "release" not in fake_api.actions()
    assert sqs.counts() == (0, 0)


def test_database_down_answers_keep_the_lease_past_its_length(fake_api: FakeApi, sqs: Sqs) -> None:
    """A 503 from the API means no one can recover the lease: the job goes on."""
    fake_api.lease_seconds = 0.3
    fake_api.videos[1] = FakeVideo()
    fake_api.script["renew"] = [DB_DOWN] * 1000
    sqs.send({"video_id": 1})

    summary = worker_make(fake_api, sqs.queue(), hold(1.0), max_videos=1).run()

    assert (summary.ready, summary.lost) == (1, 0)
    assert fake_api.videos[1].status == "READY"


def test_no_answer_from_the_api_for_a_lease_period_loses_the_lease(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.lease_seconds = 0.3
    fake_api.videos[1] = FakeVideo()
    fake_api.script["renew"] = [GATEWAY_DOWN] * 1000
    sqs.send({"video_id": 1})
    record = JobRecord()

    summary = worker_make(fake_api, sqs.queue(), recorded(hold(5), record), max_videos=1).run()

    assert (summary.lost, summary.ready) == (1, 0)
    assert record.stopped == [True]
    assert "finish" not in fake_api.actions()


def test_shutdown_mid_job_releases_the_video_and_keeps_its_message(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo()
    sqs.send({"video_id": 1})
    queue = sqs.queue()
    worker: VideoWorker

    def job(video_id: int, stop: threading.Event) -> None:
        worker.shutdown_request("SIGTERM received")  # what the signal handler calls
        hold_job(video_id, stop, seconds=5)

    worker = worker_make(fake_api, queue, job)
    started = time.monotonic()
    summary = worker.run()

    assert time.monotonic() - started < 3
    assert (summary.released, summary.exit_reason) == (1, "shutdown")
    assert fake_api.actions()[0] == "claim"
    assert fake_api.actions()[-1] == "release"
    assert "finish" not in fake_api.actions()
    assert fake_api.videos[1].status == "UPLOADED"
    assert queue.visibility[-1] == 0
    assert sqs.counts() == (1, 0)


def test_shutdown_while_polling_exits_at_once_with_nothing_held(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    worker = worker_make(fake_api, sqs.queue(wait_seconds=1), hold(0))
    started = time.monotonic()
    summary = run_until(worker, lambda: time.monotonic() - started > 0.2)
    assert (summary.videos, summary.exit_reason) == (0, "shutdown")
    assert set(fake_api.actions()) <= {"claim-next"}  # at start: nothing waits (204)


@pytest.mark.parametrize("status", ["PROCESSING", "READY", "FAILED", None])
def test_a_refused_claim_deletes_the_message_and_runs_nothing(
    fake_api: FakeApi, sqs: Sqs, status: str | None
) -> None:
    if status is not None:
        fake_api.videos[1] = FakeVideo(status=status, token="someone-else")
    sqs.send({"video_id": 1})
    record = JobRecord()
    worker = worker_make(fake_api, sqs.queue(), recorded(hold(0), record))

    summary = run_until(worker, lambda: sqs.counts() == (0, 0) and bool(fake_api.calls))

    assert (summary.refused, summary.videos) == (1, 0)
    assert [a for a in fake_api.actions() if a != "claim-next"] == ["claim"]
    assert record.runs == []
    assert sqs.counts() == (0, 0)


@pytest.mark.parametrize("body", ["hello", '{"video": 1}', '{"video_id": "1"}', "[]"])
def test_a_bad_message_is_deleted_without_a_call(fake_api: FakeApi, sqs: Sqs, body: str) -> None:
    sqs.send(body)
    worker = worker_make(fake_api, sqs.queue(), hold(0))

    summary = run_until(worker, lambda: sqs.counts() == (0, 0))

    assert summary.bad_messages == 1
    assert set(fake_api.actions()) <= {"claim-next"}  # the worker asks; nothing waits


def test_drain_finishes_this_video_then_takes_no_other(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    fake_api.videos[2] = FakeVideo()
    fake_api.drain = True
    sqs.send({"video_id": 1})
    sqs.send({"video_id": 2})

    summary = worker_make(fake_api, sqs.queue(), hold(0.3)).run()

    assert (summary.videos, summary.ready, summary.exit_reason) == (1, 1, "drain")
    assert sorted(v.status for v in fake_api.videos.values()) == ["READY", "UPLOADED"]
    assert sqs.counts() == (1, 0)


def test_transient_claim_errors_are_retried_with_a_bound(fake_api: FakeApi, sqs: Sqs) -> None:
    """Three attempts fail: the message comes back, and the next poll claims it."""
    fake_api.videos[1] = FakeVideo()
    fake_api.script["claim"] = [DB_DOWN, GATEWAY_DOWN, DB_DOWN]
    sqs.send({"video_id": 1})

    summary = worker_make(fake_api, sqs.queue(), hold(0), max_videos=1).run()

    assert summary.ready == 1
    assert fake_api.actions()[:4] == ["claim"] * 4
    assert sqs.counts() == (0, 0)


def test_transient_finish_errors_are_retried(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    fake_api.script["finish"] = [DB_DOWN, DB_DOWN]
    sqs.send({"video_id": 1})

    summary = worker_make(fake_api, sqs.queue(), hold(0), max_videos=1).run()

    assert summary.ready == 1
    assert fake_api.actions().count("finish") == 3
    assert sqs.counts() == (0, 0)


def test_a_refused_key_stops_the_worker_and_frees_the_message(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    sqs.send({"video_id": 1})
    worker = worker_make(fake_api, sqs.queue(), hold(0))
    worker.api = WorkerApiClient(fake_api.url, "wrong-key", timeout=2)

    with pytest.raises(WorkerFatal) as caught:
        worker.run()

    assert str(caught.value) == (
        "the worker API refused the claim of video 1: "
        "claim answered 403: Missing or wrong X-Worker-Key."
    )
    assert sqs.counts() == (1, 0)


def test_a_missing_queue_stops_the_worker(fake_api: FakeApi, sqs: Sqs) -> None:
    queue = RecordingQueue(sqs.url + "-missing", region=REGION, wait_seconds=0)
    with pytest.raises(WorkerFatal, match=r"^SQS receive_message: .*NonExistentQueue"):
        worker_make(fake_api, queue, hold(0)).run()


# --- No message: claim-next -----------------------------------------------------


def test_an_empty_queue_claims_the_oldest_waiting_video_with_no_message_to_hold(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    """Videos whose messages were lost: done one after another, no long poll between."""
    fake_api.videos[1] = FakeVideo()
    fake_api.videos[2] = FakeVideo()
    queue = sqs.queue()

    summary = worker_make(fake_api, queue, hold(0.2), max_videos=2).run()

    assert (summary.videos, summary.claimed_next, summary.ready) == (2, 2, 2)
    assert [v.status for v in fake_api.videos.values()] == ["READY", "READY"]
    assert [(a, b) for a, _, b in fake_api.calls if a == "claim-next"] == [
        ("claim-next", {"instance_id": "i-test", "worker_id": "test-host:1"})
    ] * 2
    assert [f[2]["status"] for f in fake_api.calls if f[0] == "finish"] == ["READY", "READY"]
    # No receive waits: at start, and after a claim-next video, the worker looks at once.
    assert queue.waits == [0, 0]
    assert queue.visibility == []  # no message to keep in flight, none deleted
    assert sqs.counts() == (0, 0)


def test_a_message_that_comes_after_claim_next_is_refused_and_deleted(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo()
    queue = sqs.queue()
    worker = worker_make(fake_api, queue, hold(0))
    sent: list[bool] = []

    def done_then_late_message() -> bool:
        if fake_api.videos[1].status == "READY" and not sent:
            sqs.send({"video_id": 1})  # the message that was late, or redriven from the DLQ
            sent.append(True)
        return "claim" in fake_api.actions() and sqs.counts() == (0, 0)

    summary = run_until(worker, done_then_late_message)

    assert (summary.videos, summary.claimed_next, summary.ready, summary.refused) == (1, 1, 1, 1)
    assert fake_api.videos[1].attempts == 1


def test_nothing_waiting_answers_204_and_the_worker_long_polls_again(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo(status="READY")
    queue = sqs.queue(wait_seconds=0)
    worker = worker_make(fake_api, queue, hold(0))

    summary = run_until(worker, lambda: fake_api.actions().count("claim-next") >= 3)

    assert (summary.videos, summary.claimed_next) == (0, 0)
    assert set(fake_api.actions()) == {"claim-next"}
    # A look at once at start; once claim-next found nothing, the queue's own long poll.
    assert (queue.waits[0], set(queue.waits[1:])) == (0, {None})


def test_a_transient_claim_next_error_waits_and_tries_again(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    fake_api.script["claim-next"] = [DB_DOWN, GATEWAY_DOWN]

    summary = worker_make(fake_api, sqs.queue(wait_seconds=0), hold(0), max_videos=1).run()

    assert (summary.ready, summary.claimed_next) == (1, 1)
    assert fake_api.actions()[:3] == ["claim-next"] * 3


def test_an_api_without_claim_next_leaves_the_worker_on_messages(
    fake_api: FakeApi, sqs: Sqs, caplog: pytest.LogCaptureFixture
) -> None:
    """An API older than the worker answers Django's 404 page: asked once, then never."""
    fake_api.script["claim-next"] = [(404, b"<html>Not Found</html>")]
    fake_api.videos[1] = FakeVideo()
    queue = sqs.queue(wait_seconds=0)
    worker = worker_make(fake_api, queue, hold(0), max_videos=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_for(lambda: len(queue.waits) >= 5)
    assert fake_api.actions() == ["claim-next"]
    assert fake_api.videos[1].status == "UPLOADED"

    sqs.send({"video_id": 1})
    thread.join(10)

    assert (worker.summary.ready, worker.summary.claimed_next) == (1, 0)
    assert "the worker API has no claim-next" in caplog.text


def test_a_refused_key_at_claim_next_stops_the_worker(fake_api: FakeApi, sqs: Sqs) -> None:
    worker = worker_make(fake_api, sqs.queue(wait_seconds=0), hold(0))
    worker.api = WorkerApiClient(fake_api.url, "wrong-key", timeout=2)

    with pytest.raises(WorkerFatal) as caught:
        worker.run()

    assert str(caught.value) == (
        "the worker API refused claim-next: claim-next answered 403: Missing or wrong X-Worker-Key."
    )


def test_shutdown_mid_job_releases_a_claim_next_video(fake_api: FakeApi, sqs: Sqs) -> None:
    fake_api.videos[1] = FakeVideo()
    queue = sqs.queue(wait_seconds=0)
    worker: VideoWorker

    def job(video_id: int, stop: threading.Event) -> None:
        worker.shutdown_request("SIGTERM received")
        hold_job(video_id, stop, seconds=5)

    worker = worker_make(fake_api, queue, job)
    summary = worker.run()

    assert (summary.released, summary.claimed_next, summary.exit_reason) == (1, 1, "shutdown")
    assert fake_api.actions()[-1] == "release"
    assert fake_api.videos[1].status == "UPLOADED"
    assert queue.visibility == []


def test_a_lost_lease_on_a_claim_next_video_stops_the_job_and_touches_no_message(
    fake_api: FakeApi, sqs: Sqs
) -> None:
    fake_api.videos[1] = FakeVideo()
    fake_api.script["renew"] = [(409, {"error": "The lease is lost.", "reason": "lease-lost"})]
    queue = sqs.queue(wait_seconds=0)
    record = JobRecord()

    summary = worker_make(fake_api, queue, recorded(hold(5), record), max_videos=1).run()

    assert (summary.lost, summary.ready, summary.claimed_next) == (1, 0, 1)
    assert record.stopped == [True]
    assert "finish" not in fake_api.actions()
    assert queue.visibility == []


# --- The jobs ----------------------------------------------------------------


def test_hold_job_holds_then_returns() -> None:
    started = time.monotonic()
    hold_job(1, threading.Event(), seconds=0.1)
    assert time.monotonic() - started >= 0.1


def test_hold_job_stops_early_and_says_so() -> None:
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    with pytest.raises(JobInterrupted, match=r"^video 1: stopped after less than 5 s$"):
        hold_job(1, stop, seconds=5)
    assert time.monotonic() - started < 1


# --- The command -------------------------------------------------------------


@pytest.fixture
def signals_kept() -> Iterator[None]:
    """The command installs SIGTERM and SIGINT handlers: put pytest's back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def configured(settings: Any) -> Any:
    settings.WORKER_API_KEYS = [KEY]
    settings.SCALING_SQS_QUEUE_URL = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/jobs"
    settings.VIDEO_WORKER_JOB = "video.worker.jobs.hold_job"
    settings.VIDEO_WORKER_HOLD_SECONDS = 0.1
    return settings


@pytest.mark.usefixtures("signals_kept")
def test_the_command_processes_a_video_and_prints_a_json_summary(
    fake_api: FakeApi, sqs: Sqs, configured: Any
) -> None:
    configured.SCALING_SQS_QUEUE_URL = sqs.url
    fake_api.videos[1] = FakeVideo()
    sqs.send({"video_id": 1})
    out = StringIO()

    call_command(
        "video_worker",
        "--instance-id=i-test",
        f"--api-url={fake_api.url}",
        "--max-videos=1",
        "--json",
        stdout=out,
    )

    assert json.loads(out.getvalue()) == {
        "bad_messages": 0,
        "claimed_next": 0,
        "exit_reason": "max-videos",
        "failed": 0,
        "lost": 0,
        "ready": 1,
        "refused": 0,
        "released": 0,
        "videos": 1,
    }
    assert fake_api.videos[1].status == "READY"
    claim = fake_api.calls[0][2]
    assert claim["instance_id"] == "i-test"
    assert re.fullmatch(r".+:\d+", claim["worker_id"])


@pytest.mark.usefixtures("signals_kept")
def test_the_command_says_a_missing_queue_in_one_line_and_exits_1(
    fake_api: FakeApi, sqs: Sqs, configured: Any
) -> None:
    with pytest.raises(CommandError) as caught:
        call_command(
            "video_worker",
            "--instance-id=i-test",
            f"--api-url={fake_api.url}",
            f"--queue-url={sqs.url}-missing",
        )
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("SQS receive_message: ")
    assert "\n" not in str(caught.value)


BAD_INPUT = [
    (
        ["--api-url=ftp://x"],
        {},
        "--api-url 'ftp://x' is not an http(s) URL: pass e.g. http://127.0.0.1:8000.",
    ),
    (
        ["--api-url=http://h:port"],
        {},
        "--api-url 'http://h:port' is not an http(s) URL: pass e.g. http://127.0.0.1:8000.",
    ),
    ([], {"WORKER_API_KEYS": []}, "No worker API key is configured: set WORKER_API_KEY."),
    (
        [],
        {"WORKER_API_KEYS": [], "WORKER_API_KEY": " , "},
        "No worker API key is configured: set WORKER_API_KEY.",
    ),
    (
        [],
        {"SCALING_SQS_QUEUE_URL": ""},
        "No job queue is configured: set SCALING_SQS_QUEUE_URL or pass --queue-url.",
    ),
    (
        ["--queue-url=sqs://jobs"],
        {},
        "'sqs://jobs' is not an SQS queue URL: expected "
        "https://sqs.<region>.amazonaws.com/<account>/<queue>.",
    ),
    (
        [],
        {"VIDEO_WORKER_JOB": "video.worker.jobs.nope"},
        "VIDEO_WORKER_JOB='video.worker.jobs.nope' cannot be imported: "
        'Module "video.worker.jobs" does not define a "nope" attribute/class.',
    ),
    (
        [],
        {"VIDEO_WORKER_JOB": "video.worker.jobs.DEFAULT_HOLD_SECONDS"},
        "VIDEO_WORKER_JOB='video.worker.jobs.DEFAULT_HOLD_SECONDS' is not callable.",
    ),
    (
        [],
        {"VIDEO_WORKER_HOLD_SECONDS": "soon"},
        "VIDEO_WORKER_HOLD_SECONDS='soon' is not a number of seconds from 0 to 86400.",
    ),
    (
        [],
        {"VIDEO_WORKER_HOLD_SECONDS": "-1"},
        "VIDEO_WORKER_HOLD_SECONDS='-1' is not a number of seconds from 0 to 86400.",
    ),
    (
        ["--instance-id=i 1"],
        {},
        "--instance-id 'i 1' is not an instance id: pass up to 64 letters, digits, '.', '_', "
        "':' or '-', e.g. i-0123456789abcdef0.",
    ),
    (
        ["--instance-id="],
        {},
        "--instance-id '' is not an instance id: pass up to 64 letters, digits, '.', '_', "
        "':' or '-', e.g. i-0123456789abcdef0.",
    ),
    (
        ["--no-instance-id"],
        {},
        "No instance id: the EC2 instance metadata service did not answer; pass --instance-id.",
    ),
    (
        ["--max-videos=0"],
        {},
        "argument --max-videos: '0' is not a whole number of 1 or more.",
    ),
    (
        ["--max-videos=many"],
        {},
        "argument --max-videos: 'many' is not a whole number of 1 or more.",
    ),
]


@pytest.mark.parametrize(("args", "overrides", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(
    configured: Any,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    overrides: dict[str, Any],
    message: str,
) -> None:
    for name, value in overrides.items():
        setattr(configured, name, value)
    # conftest disables the metadata service, so no instance id is found without the option.
    argv = [a for a in args if a != "--no-instance-id"]
    if "--no-instance-id" not in args and not any(a.startswith("--instance-id") for a in args):
        argv.append("--instance-id=i-test")

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the worker must not start on bad input")

    monkeypatch.setattr(command_module, "VideoWorker", never)

    with pytest.raises(CommandError) as caught:
        call_command("video_worker", *argv)

    assert str(caught.value) == message
    assert caught.value.returncode == 2


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(["new", "old"], "new"), (["only"], "only")],
)
def test_the_first_worker_key_is_presented(settings: Any, keys: list[str], expected: str) -> None:
    settings.WORKER_API_KEYS = keys
    assert command_module.worker_key() == expected


def manage(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "video_worker", *argv],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_as_a_process_a_bad_argument_is_one_line_on_stderr_and_exit_2() -> None:
    done = manage("--max-videos=0")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "CommandError: argument --max-videos: '0' is not a whole number of 1 or more.\n"
    )


def test_the_help_documents_the_exit_codes() -> None:
    done = manage("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "Exit 0: stopped as asked (signal, drain, --max-videos)" in text
    assert "1: cannot go on" in text
    assert "2: bad argument or configuration" in text


# --- Real signals, in a real process (moto's server, the fake API in this process) ---


class WorkerProcess:
    """A running worker; its log (stderr) is read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.log: list[str] = []
        assert process.stderr is not None
        stderr = process.stderr
        self._reader = threading.Thread(
            target=lambda: self.log.extend(iter(stderr.readline, "")), daemon=True
        )
        self._reader.start()

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.log))

    def finish(self, timeout: float = 15) -> tuple[int, str, str]:
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code, out, "".join(self.log)


@pytest.fixture
def worker_process(aws: dict[str, str], fake_api: FakeApi) -> Iterator[Callable[[], WorkerProcess]]:
    """Starts ``manage.py video_worker --json`` against moto's server and the fake API."""
    started: list[subprocess.Popen[str]] = []
    env = {
        **os.environ,
        "WORKER_API_KEY": KEY,
        "SCALING_SQS_QUEUE_URL": aws["queue_url"],
        "VIDEO_WORKER_JOB": "video.worker.jobs.hold_job",
        "VIDEO_WORKER_HOLD_SECONDS": "30",
        "PYTHONUNBUFFERED": "1",
    }

    def start() -> WorkerProcess:
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "video_worker",
                "--instance-id=i-test",
                f"--api-url={fake_api.url}",
                "--json",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return WorkerProcess(process)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_while_polling_exits_0_at_once(
    worker_process: Callable[[], WorkerProcess],
) -> None:
    worker = worker_process()
    wait_for(lambda: worker.logged(" polls "))
    time.sleep(0.5)  # inside the first long poll
    sent = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    code, out, err = worker.finish()
    assert time.monotonic() - sent < 3, err
    assert code == 0, err
    assert json.loads(out)["exit_reason"] == "shutdown"
    assert "SIGTERM received: stopping" in err


def test_sigterm_mid_job_releases_the_video_and_exits_0(
    worker_process: Callable[[], WorkerProcess], fake_api: FakeApi, aws: dict[str, str]
) -> None:
    fake_api.videos[1] = FakeVideo()
    sqs = Sqs(
        boto3.client("sqs", region_name=REGION, endpoint_url=aws["endpoint"]), aws["queue_url"]
    )
    sqs.send({"video_id": 1})
    worker = worker_process()
    wait_for(lambda: "renew" in fake_api.actions())

    worker.process.send_signal(signal.SIGTERM)
    code, out, err = worker.finish()

    assert code == 0, err
    assert json.loads(out)["released"] == 1
    assert fake_api.videos[1].status == "UPLOADED"
    assert "finish" not in fake_api.actions()
    assert sqs.counts() == (1, 0)
