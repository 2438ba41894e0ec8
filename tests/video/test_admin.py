"""The Video admin: status, attempts, the holding instance, the lease left; a lease filter."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from tests.factories import video_create, video_leased
from video.models import Video, VideoRecovery
from video.services import videos_recover_expired

pytestmark = pytest.mark.django_db

URL = "/admin/video/video/"


def _titles(response: Any) -> set[str]:
    return {video.title for video in response.context["cl"].result_list}


def test_change_list_shows_the_lease(admin_client: Client) -> None:
    video_leased(expires_in=90, instance_id="i-0ddddddddddddddd4", attempts=2)
    video_leased(expires_in=-30, instance_id="i-0eeeeeeeeeeeeeee5")
    video_create(status="PROCESSING")

    response = admin_client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert "i-0ddddddddddddddd4" in html
    assert '<td class="field-attempts">2</td>' in html
    # Give or take the second the test itself takes.
    assert re.search(r'field-lease_remaining">(89|90) s<', html)
    assert re.search(r'field-lease_remaining">expired (30|31) s ago<', html)
    assert 'field-lease_remaining">no lease<' in html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("expired", {"expired", "no-lease"}, id="expired"),
        pytest.param("live", {"live"}, id="live"),
        pytest.param(None, {"expired", "no-lease", "live", "ready", "uploaded"}, id="all"),
    ],
)
def test_lease_filter(admin_client: Client, value: str | None, expected: set[str]) -> None:
    for title, make in {
        "expired": lambda: video_leased(expires_in=-5),
        "live": lambda: video_leased(expires_in=60),
        "no-lease": lambda: video_create(status="PROCESSING"),
        "ready": lambda: video_create(status="READY"),
        "uploaded": lambda: video_create(status="UPLOADED"),
    }.items():
        Video.objects.filter(pk=make().pk).update(title=title)

    response = admin_client.get(URL, {"lease": value} if value else {})

    assert response.status_code == 200
    assert _titles(response) == expected


def test_adding_a_video_is_an_upload(
    admin_client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.SCALING_SQS_QUEUE_URL = (
        "https://sqs.ap-northeast-2.amazonaws.com/123456789012/academy-video-jobs"
    )
    sent: list[int] = []
    monkeypatch.setattr("video.jobs.video_job_send", lambda video_id, **kw: sent.append(video_id))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{URL}add/", {"title": "Lecture 42"})

    assert response.status_code == 302
    video = Video.objects.get(title="Lecture 42")
    assert (video.status, sent) == ("UPLOADED", [video.pk])


def test_status_and_lease_are_read_only_in_the_form(admin_client: Client) -> None:
    video = video_leased(token="secret-token")

    response = admin_client.post(
        f"{URL}{video.pk}/change/", {"title": "Renamed", "status": "READY", "attempts": "9"}
    )

    assert response.status_code == 302
    row = Video.objects.get(pk=video.pk)
    assert (row.title, row.status, row.attempts) == ("Renamed", "PROCESSING", 1)
    assert "secret-token" not in admin_client.get(f"{URL}{video.pk}/change/").content.decode()


def test_recoveries_are_listed_read_only(admin_client: Client) -> None:
    video_leased(expires_in=-5, instance_id="i-0fffffffffffffff6")
    videos_recover_expired(max_attempts=3)

    response = admin_client.get("/admin/video/videorecovery/")

    assert response.status_code == 200
    assert "i-0fffffffffffffff6" in response.content.decode()
    assert VideoRecovery.objects.count() == 1
    assert admin_client.get("/admin/video/videorecovery/add/").status_code == 403
