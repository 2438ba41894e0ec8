"""The Video admin's "Upload a burst": staff who may add videos, a checked count, CSRF."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from devstack.localaws import local_client
from video.models import Video, VideoStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/video/video/"
URL = "/admin/video/video/upload-burst/"


def _staff(*, may_add: bool) -> Client:
    user = User.objects.create_user("staff", password="pw-for-tests", is_staff=True)
    codenames = ["view_video", *(["add_video"] if may_add else [])]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_the_change_list_links_to_the_form(admin_client: Client) -> None:
    html = admin_client.get(CHANGELIST).content.decode()
    assert f'<a href="{URL}" class="addlink" id="video-upload-burst">Upload a burst</a>' in html


def test_the_form_shows_a_count_of_thirty(admin_client: Client) -> None:
    response = admin_client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="count" value="30"' in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_a_burst_uploads_count_videos_and_goes_back_to_the_list(
    admin_client: Client, aws: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, {"count": "7", "title_prefix": "From the admin"})

    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    videos = list(Video.objects.order_by("pk"))
    assert [v.title for v in videos] == [f"From the admin {n}/7" for n in range(1, 8)]
    assert {v.status for v in videos} == {VideoStatus.UPLOADED}
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "7"
    page = admin_client.get(CHANGELIST).content.decode()
    assert (
        f"Uploaded 7 videos, ids {videos[0].pk} to {videos[-1].pk} "
        "(&quot;From the admin 1/7&quot; ...)."
    ) in page


@pytest.mark.parametrize(
    ("count", "error"),
    [
        pytest.param("0", "Ensure this value is greater than or equal to 1.", id="zero"),
        pytest.param("1001", "Ensure this value is less than or equal to 1000.", id="over"),
        pytest.param("many", "Enter a whole number.", id="word"),
        pytest.param("", "This field is required.", id="empty"),
    ],
)
def test_a_bad_count_shows_the_form_again_and_uploads_nothing(
    admin_client: Client, count: str, error: str
) -> None:
    response = admin_client.post(URL, {"count": count})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert Video.objects.count() == 0


def test_staff_without_the_add_permission_get_403_and_no_link() -> None:
    client = _staff(may_add=False)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"count": "3"}).status_code == 403
    assert "Upload a burst" not in client.get(CHANGELIST).content.decode()
    assert Video.objects.count() == 0


def test_staff_with_the_add_permission_may_upload(settings: Any) -> None:
    settings.SCALING_SQS_QUEUE_URL = ""
    client = _staff(may_add=True)
    assert client.post(URL, {"count": "2"}).status_code == 302
    assert Video.objects.count() == 2


def test_anonymous_users_are_sent_to_the_login() -> None:
    response = Client().post(URL, {"count": "3"})
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert Video.objects.count() == 0


def test_a_post_without_the_csrf_token_is_refused(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(URL, {"count": "3"}).status_code == 403
    assert Video.objects.count() == 0
