"""The read surfaces per fleet (issue 19, item 3): publish_backlog, scaling_status, the
internal endpoint, the admin and simulate_scaling, with two fleets on moto: ``video``
measured through the port and ``ai`` measured by its SQS queue's depth.

The single-fleet outputs are held by the surfaces' own tests, unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from devstack.localaws import local_aws_bootstrap, local_client
from scaling.models import MetricPublication
from tests.deploy.test_iam_documents import calls_held_to_the_configured_fleets
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

VIDEO_ASG = "academy-video-worker-asg"
AI_ASG = "academy-ai-worker-asg"
KEY = "k-fleets-5d1e"
URL = "/api/v1/internal/video/backlog-count/"
LIST_URL = "/admin/scaling/metricpublication/"
UNKNOWN = "Unknown fleet 'nope': configured fleets are video, ai."


@pytest.fixture
def fleets(aws: dict[str, str], settings: Any) -> Iterator[dict[str, str]]:
    """Two fleets: video on the port (its fallback the fixture's queue), ai on its queue,
    which holds 3 messages. The app's AWS calls are held to the IAM documents rendered
    for these fleets (deploy/iam/ is for the default fleet alone)."""
    created = local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="academy-ai-jobs")
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    for n in range(3):
        sqs.send_message(QueueUrl=created["queue_url"], MessageBody=f'{{"job": {n}}}')
    settings.SCALING_FLEETS = [
        {"name": "video", "asg_name": VIDEO_ASG, "source": "port", "queue_url": aws["queue_url"]},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": created["queue_url"],
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
            "policy": {"target_value": 4, "warmup": 120, "min_size": 1, "max_size": 6},
        },
    ]
    settings.INTERNAL_API_KEYS = [KEY]
    with calls_held_to_the_configured_fleets():
        yield {**aws, "ai_queue_url": created["queue_url"]}


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        _run(*args)
    return caught.value


def _rows(fleet: str, values: list[int], **fields: Any) -> None:
    """One published row a minute for ``fleet``, the last one a minute ago."""
    now = timezone.now().replace(second=0, microsecond=0)
    for k, value in enumerate(values):
        MetricPublication.objects.create(
            slot_start=now - timedelta(minutes=len(values) - k),
            interval_seconds=60,
            value=value,
            source="sqs" if fleet == "ai" else "db",
            status="published",
            duration_ms=3.0,
            asg_name=AI_ASG if fleet == "ai" else VIDEO_ASG,
            fleet=fleet,
            **fields,
        )


# --------------------------------------------------------------------------- publish_backlog


def test_publish_backlog_ticks_every_fleet_a_line_each(fleets: dict[str, str]) -> None:
    videos_create(UPLOADED=2)

    lines = _run("publish_backlog").splitlines()

    assert len(lines) == 2
    assert lines[0].startswith("[video] Published BacklogCount=2 (source db) for slot ")
    assert lines[1].startswith("[ai] Published BacklogCount=3 (source sqs) for slot ")
    assert set(MetricPublication.objects.values_list("fleet", "value")) == {("video", 2), ("ai", 3)}


def test_publish_backlog_json_keeps_the_default_fleets_keys_and_adds_fleets(
    fleets: dict[str, str],
) -> None:
    videos_create(UPLOADED=1, PROCESSING=1)

    data = json.loads(_run("publish_backlog", "--json", "--dry-run"))

    assert (data["fleet"], data["value"], data["source"], data["published"]) == (
        "video",
        2,
        "db",
        False,
    )
    assert [(f["fleet"], f["value"], f["source"]) for f in data["fleets"]] == [
        ("video", 2, "db"),
        ("ai", 3, "sqs"),
    ]


def test_publish_backlog_one_fleet_alone(fleets: dict[str, str]) -> None:
    data = json.loads(_run("publish_backlog", "--fleet", "ai", "--json"))

    assert (data["fleet"], data["value"], data["source"], data["published"]) == (
        "ai",
        3,
        "sqs",
        True,
    )
    assert "fleets" not in data
    assert list(MetricPublication.objects.values_list("fleet", flat=True)) == ["ai"]


def test_publish_backlog_unknown_fleet_exits_2_naming_the_known_ones(
    fleets: dict[str, str],
) -> None:
    error = _refused("publish_backlog", "--fleet", "nope")

    assert (str(error), error.returncode) == (UNKNOWN, 2)
    assert not MetricPublication.objects.exists()


# --------------------------------------------------------------------------- scaling_status


def test_status_has_a_section_per_fleet(fleets: dict[str, str]) -> None:
    videos_create(UPLOADED=4)
    _rows("ai", [5, 3])

    lines = _run("scaling_status", "--slots", "3").splitlines()

    video, ai = (
        lines.index(next(x for x in lines if x.startswith("Fleet video:"))),
        next(i for i, x in enumerate(lines) if x.startswith("Fleet ai:")),
    )
    assert video == 0 < ai
    assert lines[0] == (
        "Fleet video: metric Academy/VideoProcessing BacklogCount (WorkerType=Video, "
        f"AutoScalingGroupName={VIDEO_ASG}); backlog from the backlog source (port), SQS "
        f"fallback {fleets['queue_url']}; leases on."
    )
    assert lines[1] == f"Group {VIDEO_ASG} (ap-northeast-2)"
    assert lines[2].startswith("Backlog in the database now: 4 (uploaded 4, processing 0")
    section = lines[ai:]
    assert section[0] == (
        "Fleet ai: metric Academy/Workers BacklogCount (WorkerType=AI, "
        f"AutoScalingGroupName={AI_ASG}); backlog from SQS queue {fleets['ai_queue_url']}; "
        "leases off."
    )
    assert section[1] == f"Group {AI_ASG} (ap-northeast-2)"
    assert section[2].startswith("Backlog now: not read: fleet ai is measured by its SQS queue")
    # Its own rows: the two published slots, and the slot now not recorded yet.
    assert [x[23:29].strip() for x in section[5:7]] == ["5 sqs", "3 sqs"]
    assert "Leases, recovery, scale-in protection and drain: off: fleet ai's workers hold no " in (
        "\n".join(section)
    )
    assert section[-2:] == [
        "Fleet: no instances.",
        "Lifecycle hook academy-drain-on-terminate: not installed (none needed: no leases "
        "to drain).",
    ]


def test_status_json_keeps_the_default_keys_and_adds_fleets(fleets: dict[str, str]) -> None:
    _rows("ai", [7])
    _rows("video", [1])

    data = json.loads(_run("scaling_status", "--json", "--slots", "2"))

    assert data["asg_name"] == VIDEO_ASG
    assert data["publications"]["data"][0]["value"] == 1
    entries = {f["fleet_name"]: f for f in data["fleets"]}
    assert list(entries) == ["video", "ai"]
    assert set(entries["ai"]) == set(data) - {"fleets"} | {"fleet_name", "fleet_config"}
    ai = entries["ai"]
    assert ai["asg_name"] == AI_ASG
    assert [p["value"] for p in ai["publications"]["data"]] == [7]
    assert ai["fleet_config"]["source"] == "sqs"
    assert ai["fleet_config"]["dimensions"] == {"WorkerType": "AI", "AutoScalingGroupName": AI_ASG}
    assert ai["database"]["ok"] is False
    # Without its policy installed the aim says so; the group was read.
    assert ai["group"]["ok"] is True


def test_status_one_fleet_alone_and_an_unknown_one(fleets: dict[str, str]) -> None:
    data = json.loads(_run("scaling_status", "--fleet", "ai", "--json"))
    text = _run("scaling_status", "--fleet", "ai").splitlines()
    error = _refused("scaling_status", "--fleet", "nope")

    assert (data["asg_name"], data["fleet_name"]) == (AI_ASG, "ai")
    assert "fleets" not in data
    assert text[0].startswith("Fleet ai: ")
    assert not any(line.startswith("Fleet video:") for line in text)
    assert (str(error), error.returncode) == (UNKNOWN, 2)


# --------------------------------------------------------------------------- the endpoint


def _get(client: Client, query: str = "") -> Any:
    return client.get(URL + query, HTTP_X_INTERNAL_KEY=KEY)


def test_endpoint_answers_for_a_fleet_each(client: Client, fleets: dict[str, str]) -> None:
    videos_create(UPLOADED=2, PROCESSING=1)
    _rows("ai", [9])

    default, video, ai = _get(client), _get(client, "?fleet=video"), _get(client, "?fleet=ai")

    moving = ("measured_at", "oldest_waiting_seconds")
    assert {k: v for k, v in default.json().items() if k not in moving} == {
        k: v for k, v in video.json().items() if k not in moving
    }
    assert (default.json()["fleet"], default.json()["backlog_count"]) == ("video", 3)
    assert default.json()["last_publication"] is None
    body = ai.json()
    assert ai.status_code == 200
    assert ai["Cache-Control"] == "no-store"
    assert (body["fleet"], body["backlog_count"], body["uploaded"], body["processing"]) == (
        "ai",
        3,
        3,
        0,
    )
    assert body["oldest_waiting_seconds"] is None
    assert body["last_publication"]["value"] == 9


def test_endpoint_unknown_fleet_is_404_with_one_line(
    client: Client, fleets: dict[str, str]
) -> None:
    response = _get(client, "?fleet=nope")

    assert response.status_code == 404
    assert response.json() == {"error": UNKNOWN}
    assert _get(client, "?fleet=" + "x" * 5000).status_code == 404
    # The key is checked first: an unknown fleet tells a stranger nothing.
    assert client.get(URL + "?fleet=nope").status_code == 403


def test_endpoint_says_when_the_fleets_queue_cannot_be_read(
    client: Client, fleets: dict[str, str]
) -> None:
    local_client("sqs", fleets["endpoint"], fleets["region"]).delete_queue(
        QueueUrl=fleets["ai_queue_url"]
    )

    response = _get(client, "?fleet=ai")

    assert response.status_code == 503
    assert response.json()["error"].startswith("queue depth unavailable (")


# --------------------------------------------------------------------------- the admin


def test_admin_chart_draws_one_fleet_at_a_time(
    admin_client: Client, fleets: dict[str, str]
) -> None:
    _rows("video", [1, 2, 3, 4])
    _rows("ai", [5, 6])

    default = admin_client.get(LIST_URL).content.decode()
    ai = admin_client.get(LIST_URL + "?fleet=ai&window=6h")
    html = ai.content.decode()

    assert 'data-slots="4"' in default
    assert 'data-fleet="video"' in default
    assert ai.status_code == 200
    assert 'data-slots="2"' in html
    assert 'data-fleet="ai"' in html
    # The filter's choice drives the list too; the window stays in the fleet links.
    assert ai.context["cl"].result_count == 2
    assert {r.fleet for r in ai.context["cl"].result_list} == {"ai"}
    nav = html.split('<nav id="chart-fleet"', 1)[1].split("</nav>", 1)[0]
    assert 'aria-current="page" data-fleet="ai"' in nav
    assert 'href="?fleet=video&amp;window=6h" data-fleet="video"' in nav
    assert html.index('id="chart-fleet"') < html.index('id="publication-chart-figure"')
    assert "Fleet ai (group academy-ai-worker-asg), last 6 hours" in html
    # The window links keep the fleet.
    assert "?fleet=ai&amp;window=1h" in html
    # The list shows the fleet column and offers the filter.
    assert "column-fleet" in html
    assert "By fleet" in html


def test_admin_without_a_fleet_lists_every_fleets_rows(
    admin_client: Client, fleets: dict[str, str]
) -> None:
    _rows("video", [1, 2])
    _rows("ai", [5])

    response = admin_client.get(LIST_URL)

    assert response.context["cl"].result_count == 3
    assert 'id="chart-fleet-error"' not in response.content.decode()


def test_admin_unknown_fleet_is_one_line_and_the_default(
    admin_client: Client, fleets: dict[str, str]
) -> None:
    _rows("video", [1, 2])
    _rows("ai", [5])

    response = admin_client.get(LIST_URL + "?fleet=nope")
    html = response.content.decode()

    assert response.status_code == 200
    escaped = UNKNOWN.replace("'", "&#x27;")
    assert (
        f'<p id="chart-fleet-error" class="errornote">{escaped} Showing fleet video.</p>'
    ) in html
    assert 'data-fleet="video" ' in html.split('id="publication-chart"', 1)[1][:600]
    assert response.context["cl"].result_count == 2


def test_admin_with_one_fleet_has_no_fleet_links(admin_client: Client) -> None:
    html = admin_client.get(LIST_URL).content.decode()

    assert 'id="chart-fleet"' not in html


# --------------------------------------------------------------------------- simulate_scaling


def test_simulate_replays_a_fleets_history_with_its_policy(fleets: dict[str, str]) -> None:
    _rows("ai", [2, 6, 10, 4, 0], in_service_instances=1)
    _rows("video", [50, 50])

    data = json.loads(
        _run("simulate_scaling", "--fleet", "ai", "--processing-mean", "60", "--json")
    )

    assert data["workload"]["description"].startswith("fleet ai's history: 5 audit rows")
    # 2 at first, then the rises plus one instance's minute of work while any waited.
    assert data["workload"]["videos"] == 2 + (4 + 1) + (4 + 1) + 0 + 0
    result = data["result"]
    assert (result["target"], result["warmup_seconds"]) == (4, 120)
    assert (result["min_size"], result["max_size"]) == (1, 6)


def test_simulate_flags_win_over_the_fleets_policy(fleets: dict[str, str]) -> None:
    data = json.loads(
        _run(
            "simulate_scaling",
            "--fleet",
            "ai",
            "--pattern",
            "spike",
            "--count",
            "10",
            "--processing-mean",
            "30",
            "--target-value",
            "2",
            "--max-size",
            "3",
            "--json",
        )
    )

    result = data["result"]
    assert data["workload"]["description"].startswith("spike of 10 videos at 60 s;")
    assert (result["target"], result["max_size"], result["min_size"]) == (2, 3, 1)


def test_simulate_an_sqs_fleet_needs_a_processing_time(fleets: dict[str, str]) -> None:
    _rows("ai", [2, 3])

    error = _refused("simulate_scaling", "--fleet", "ai")

    assert "fleet ai's backlog is an SQS queue, which keeps no processing history" in str(error)
    assert error.returncode == 1


def test_simulate_unknown_fleet_exits_2(fleets: dict[str, str]) -> None:
    error = _refused("simulate_scaling", "--fleet", "nope", "--pattern", "spike", "--count", "1")

    assert (str(error), error.returncode) == (UNKNOWN, 2)


def test_simulate_a_fleet_with_no_history_says_so(fleets: dict[str, str]) -> None:
    error = _refused("simulate_scaling", "--fleet", "ai", "--processing-mean", "60")

    assert str(error).startswith("fleet ai has no recorded backlog in the last 86400 s")
