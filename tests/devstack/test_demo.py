"""`make demo`: the videos go in through video_upload, and the watch line says what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.demo import env_file_read, loop_closed, main, snapshot, snapshot_line, videos_upload
from devstack.localaws import local_client
from video.models import Video, VideoStatus

pytestmark = pytest.mark.django_db


def test_the_env_file_is_read_as_the_launcher_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "devstack.env"
    path.write_text("AWS_REGION=ap-northeast-2\n# a note\nINTERNAL_API_KEY=local-ab=cd\n\n")
    assert env_file_read(path) == {
        "AWS_REGION": "ap-northeast-2",
        "INTERNAL_API_KEY": "local-ab=cd",
    }


def test_without_the_env_file_it_says_to_start_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACADEMY_VAR_DIR", str(tmp_path))
    assert main(["--videos", "3"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'devstack.env'} not found: start the stack with make run first\n"
    )


def test_uploaded_videos_wait_with_a_job_message_each(
    aws: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        ids = videos_upload(4)
    assert Video.objects.filter(pk__in=ids, status=VideoStatus.UPLOADED).count() == 4
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "4"
    group = {"desired": 0, "min": 0, "in_service": 0}
    snap = snapshot(ids, lambda: group)
    assert snapshot_line(snap, 4) == (
        "videos: 4 waiting, 0 processing, 0 ready, 0 failed (of 4) | "
        "BacklogCount: nothing published yet | group: desired 0, in service 0"
    )
    assert not loop_closed(snap, 4)
    Video.objects.filter(pk__in=ids).update(status=VideoStatus.READY)
    assert loop_closed(snapshot(ids, lambda: group), 4)
    assert not loop_closed(snapshot(ids, lambda: {**group, "in_service": 1}), 4)


def test_an_unreadable_group_is_part_of_the_line() -> None:
    def down() -> dict[str, Any]:
        raise LookupError("group academy-video-worker-asg does not exist")

    line = snapshot_line(snapshot([], down), 0)
    assert line.endswith(
        "| group unreadable (LookupError: group academy-video-worker-asg does not exist)"
    )
