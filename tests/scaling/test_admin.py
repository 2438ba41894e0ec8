from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from scaling.admin import MetricPublicationAdmin
from scaling.models import MetricPublication
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/scaling/metricpublication/"


def _publications(n: int, *, failed_every: int = 0, sqs_every: int = 0) -> list[MetricPublication]:
    end = timezone.now().replace(second=0, microsecond=0)
    rows = []
    for i in range(n):
        failed = bool(failed_every) and i % failed_every == failed_every - 1
        sqs = bool(sqs_every) and i % sqs_every == sqs_every - 1 and not failed
        rows.append(
            MetricPublication(
                slot_start=end - timedelta(minutes=n - i),
                interval_seconds=60,
                value=None if failed else i % 9,
                source="" if failed else ("sqs" if sqs else "db"),
                status="failed" if failed else "published",
                error="database and SQS both unavailable" if failed else "",
                duration_ms=4.0,
                asg_name="academy-video-worker-asg",
            )
        )
    return MetricPublication.objects.bulk_create(rows)


def _staff(*, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def test_change_list_shows_the_chart_with_one_mark_per_slot(admin_client: Client) -> None:
    _publications(60, failed_every=20, sqs_every=7)

    response = admin_client.get(LIST_URL + "?window=6h")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="publication-chart"' in html
    assert 'data-slots="60" data-failed="3" data-sqs="8"' in html
    assert html.count('class="point ') == 60
    assert html.count('class="point failed"') == 3
    assert "<script src=" not in html.split('id="publication-chart"')[1].split("</svg>")[0]
    # The list itself, newest first, with the columns of list_display.
    assert html.count('class="action-checkbox"') == 0  # no delete action, so no checkboxes
    assert "academy-video-worker-asg" in html


def test_chart_leaves_out_slots_older_than_a_day(admin_client: Client) -> None:
    [old] = _publications(1)
    MetricPublication.objects.filter(pk=old.pk).update(
        slot_start=timezone.now() - timedelta(hours=25)
    )

    response = admin_client.get(LIST_URL + "?window=24h")

    assert 'data-slots="0"' in response.content.decode()
    assert "No publications in this period." in response.content.decode()


@pytest.mark.parametrize("query", ["", "?status__exact=failed", "?source__exact=sqs"])
def test_filters_by_status_and_source(admin_client: Client, query: str) -> None:
    _publications(20, failed_every=5, sqs_every=3)

    response = admin_client.get(LIST_URL + query)

    assert response.status_code == 200
    expected = {"": 20, "?status__exact=failed": 4, "?source__exact=sqs": 5}[query]
    assert response.context["cl"].result_count == expected


def test_date_hierarchy_is_on_slot_start(admin_client: Client) -> None:
    [row] = _publications(1)

    response = admin_client.get(f"{LIST_URL}?slot_start__year={row.slot_start.year}")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.parametrize("who", ["anonymous", "not-staff"])
def test_users_who_are_not_staff_are_sent_to_the_login_page(client: Client, who: str) -> None:
    if who == "not-staff":
        client.force_login(User.objects.create_user("learner", password="pw-learner-1"))

    response = client.get(LIST_URL)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={LIST_URL}"


def test_staff_without_view_permission_is_refused(client: Client) -> None:
    client.force_login(_staff())

    assert client.get(LIST_URL).status_code == 403


def test_staff_with_view_permission_sees_the_list(client: Client) -> None:
    _publications(3)
    client.force_login(_staff(perms=("view_metricpublication",)))

    response = client.get(LIST_URL)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 3


def test_superuser_cannot_change_an_audit_row_by_post(admin_client: Client) -> None:
    [row] = _publications(1)
    url = f"{LIST_URL}{row.pk}/change/"
    form = {
        "slot_start_0": "2020-01-01",
        "slot_start_1": "00:00:00",
        "interval_seconds": "60",
        "value": "999",
        "source": "db",
        "status": "published",
        "duration_ms": "1",
        "asg_name": "forged",
    }

    response = admin_client.post(url, form)

    assert response.status_code == 403
    row.refresh_from_db()
    assert (row.value, row.asg_name) == (0, "academy-video-worker-asg")


def test_change_view_is_read_only_for_a_superuser(admin_client: Client) -> None:
    [row] = _publications(1)

    response = admin_client.get(f"{LIST_URL}{row.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    for field in ("slot_start", "value", "source", "status", "error", "asg_name"):
        assert f'name="{field}' not in html
    assert response.context["has_change_permission"] is False


@pytest.mark.parametrize("suffix", ["add/", "{pk}/delete/"])
def test_superuser_cannot_add_or_delete(admin_client: Client, suffix: str) -> None:
    [row] = _publications(1)
    url = LIST_URL + suffix.format(pk=row.pk)

    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert MetricPublication.objects.count() == 1


def test_delete_action_is_not_offered(admin_client: Client) -> None:
    [row] = _publications(1)

    response = admin_client.post(
        LIST_URL, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )

    assert response.status_code in (200, 302)
    assert MetricPublication.objects.count() == 1


def test_permissions_are_false_even_for_a_superuser(rf: Any, admin_user: User) -> None:
    from django.contrib.admin.sites import site

    request = rf.get(LIST_URL)
    request.user = admin_user
    model_admin = MetricPublicationAdmin(MetricPublication, site)

    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_view_permission(request) is True


def test_video_admin_shows_counts_by_status(admin_client: Client) -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=4)

    response = admin_client.get("/admin/video/video/")

    assert response.status_code == 200
    html = response.content.decode()
    for label, n in (("Uploaded", 3), ("Processing", 2), ("Ready", 4), ("Failed", 0)):
        assert f'<span data-status="{label}">{n}</span>' in html


def test_change_list_shows_what_the_installed_policy_aims_for(
    admin_client: Client, aws: dict[str, str]
) -> None:
    from django.core.management import call_command

    call_command("install_scaling_policy", "--target-value", "3", stdout=None)
    _publications(3)  # values 0, 1, 2; the newest is 2

    response = admin_client.get(LIST_URL)

    html = response.content.decode()
    assert (
        '<p id="policy-aim" style="margin:0 0 1em 0">Installed policy: per-instance, '
        "target 3, group min 0 max 10; for the latest value (2) target tracking aims for "
        "about 1 instances</p>"
    ) in html
    assert "Policy aims for" in html
    assert html.count(">1 instances<") == 2  # values 1 and 2
    assert html.count(">0 instances<") == 1  # value 0


def test_change_list_says_why_the_policy_is_unknown(
    admin_client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _publications(2)

    response = admin_client.get(LIST_URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert (
        '<p id="policy-aim" style="margin:0 0 1em 0">Installed policy unknown: cannot reach AWS '
        "at http://127.0.0.1:9/: check AWS_ENDPOINT_URL / network</p>"
    ) in html
    assert "Policy aims for" not in html


def test_change_list_says_there_are_no_credentials(
    admin_client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    html = admin_client.get(LIST_URL).content.decode()

    assert (
        '<p id="policy-aim" style="margin:0 0 1em 0">Installed policy unknown: no AWS '
        "credentials on this host: give the instance the status role (deploy/iam/status.json) "
        "or set AWS_PROFILE</p>"
    ) in html


def test_change_list_shows_the_fleet_above_the_chart(
    admin_client: Client, aws: dict[str, str]
) -> None:
    import boto3

    from scaling.aws import aws_call_observers
    from tests.factories import video_leased

    autoscaling = boto3.client(
        "autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"]
    )
    autoscaling.set_desired_capacity(AutoScalingGroupName=aws["asg_name"], DesiredCapacity=2)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[aws["asg_name"]])
    a, b = sorted(i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"])
    autoscaling.set_instance_protection(
        AutoScalingGroupName=aws["asg_name"], InstanceIds=[a], ProtectedFromScaleIn=True
    )
    video = video_leased(instance_id=a)
    calls: list[str] = []
    aws_call_observers.append(lambda role, service, op, params, status: calls.append(op))
    try:
        first = admin_client.get(LIST_URL).content.decode()
        second = admin_client.get(LIST_URL).content.decode()
    finally:
        aws_call_observers.pop()

    rows = first.split('<table id="fleet-table">', 1)[1].split("</table>", 1)[0]
    assert "Fleet: 2 in the group, 1 busy, 1 protected from scale-in</caption>" in rows
    # Seconds since processing started: 0 on a quiet machine, a little more on a busy one.
    assert re.search(
        rf"<tr><td>{a}</td><td>InService</td><td>yes</td><td>{video.pk}</td><td>[0-5] s</td></tr>",
        rows,
    )
    assert f"<tr><td>{b}</td><td>InService</td><td>no</td><td>idle</td><td>-</td></tr>" in rows
    assert first.index('id="fleet"') < first.index('id="publication-chart-figure"')
    # One group read for the fleet and one for the policy; the second page reads the cache.
    assert calls.count("DescribeAutoScalingGroups") == 2
    assert f"<td>{video.pk}</td>" in second


def test_change_list_says_why_the_fleet_is_unknown(
    admin_client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    html = admin_client.get(LIST_URL).content.decode()

    assert (
        '<p id="fleet-error">fleet unknown (cannot reach AWS at http://127.0.0.1:9/: '
        "check AWS_ENDPOINT_URL / network)</p>"
    ) in html
