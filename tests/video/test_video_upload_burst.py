"""`manage.py video_upload_burst` (`make burst`): N uploads in one step, each with its job."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError

from devstack.localaws import local_client
from video.burst import BurstError, video_burst_upload
from video.models import Video, VideoStatus

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("video_upload_burst", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _waiting_messages(aws: dict[str, str]) -> int:
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_burst_uploads_count_videos_each_with_its_job_message(
    aws: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out, err = _run("--count", "5", "--title-prefix", "Load test")

    videos = list(Video.objects.order_by("pk"))
    first, last = videos[0].pk, videos[-1].pk
    assert out == f'Uploaded 5 videos, ids {first} to {last} ("Load test 1/5" ...).\n'
    assert err == ""
    assert [v.title for v in videos] == [f"Load test {n}/5" for n in range(1, 6)]
    assert {v.status for v in videos} == {VideoStatus.UPLOADED}
    assert len(callbacks) == 5
    assert _waiting_messages(aws) == 5


def test_json_names_the_ids_and_the_default_prefix(
    aws: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = _run("--count", "3", "--json")

    result = json.loads(out)
    ids = sorted(Video.objects.values_list("pk", flat=True))
    assert result["uploaded"] == 3
    assert (result["first_id"], result["last_id"]) == (ids[0], ids[-1])
    assert result["job_messages"] is True
    assert result["title_prefix"].startswith("Burst ")
    assert Video.objects.filter(title=f"{result['title_prefix']} 3/3").exists()


def test_the_default_count_is_thirty(settings: Any) -> None:
    settings.SCALING_SQS_QUEUE_URL = ""
    out, err = _run("--json")
    assert json.loads(out)["uploaded"] == 30
    assert json.loads(out)["job_messages"] is False
    assert err == (
        "No job queue is configured (SCALING_SQS_QUEUE_URL): the videos wait in the "
        "database with no job message.\n"
    )
    assert Video.objects.count() == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--count", "0"],
            "argument --count: '0' is not a whole number from 1 to 1000.",
            id="zero",
        ),
        pytest.param(
            ["--count", "1001"],
            "argument --count: '1001' is not a whole number from 1 to 1000.",
            id="over",
        ),
        pytest.param(
            ["--count", "-3"],
            "argument --count: '-3' is not a whole number from 1 to 1000.",
            id="negative",
        ),
        pytest.param(
            ["--count", "ten"],
            "argument --count: 'ten' is not a whole number from 1 to 1000.",
            id="word",
        ),
        pytest.param(
            ["--count", "3", "--title-prefix", "x" * 201],
            "argument --title-prefix: must be 1 to 200 characters.",
            id="long-prefix",
        ),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        _run(*args)
    assert str(caught.value) == message
    assert caught.value.returncode == 2
    assert Video.objects.count() == 0


def test_from_the_command_line_a_bad_count_is_one_line_on_stderr() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "video_upload_burst", "--count", "5000"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "CommandError: argument --count: '5000' is not a whole number from 1 to 1000.\n"
    )


def test_a_database_refusal_uploads_nothing_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def refuse(*, title: str) -> Video:
        calls.append(title)
        if len(calls) == 3:
            raise DatabaseError("connection lost\nCONTEXT: somewhere")
        return Video.objects.create(title=title, status=VideoStatus.UPLOADED)

    monkeypatch.setattr("video.burst.video_upload", refuse)
    with pytest.raises(CommandError) as caught:
        _run("--count", "5")
    assert str(caught.value) == (
        "No video uploaded: the database refused (DatabaseError: connection lost)."
    )
    assert caught.value.returncode == 1
    assert Video.objects.count() == 0  # all or none


@pytest.mark.parametrize("count", [0, 1001])
def test_the_service_refuses_a_count_out_of_bounds(count: int) -> None:
    with pytest.raises(BurstError, match="count must be from 1 to 1000"):
        video_burst_upload(count=count)
