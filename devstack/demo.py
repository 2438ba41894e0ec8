"""`make demo VIDEOS=20`: put work into the stack `make run` started, and watch the loop close.

Reads ``devstack.env`` (written by the launcher under ACADEMY_VAR_DIR, default
var/) to reach the same database, queue and endpoint, uploads N videos through
``video.services.video_upload`` (each sends its SQS job message on commit), then
prints a line whenever something changes: the videos by status, the latest
published BacklogCount, the group's desired capacity and instances in service.
It stops once every uploaded video is done and the group is back to its
minimum (``--no-follow``: upload and exit). Ctrl-C stops watching, not the work.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
FOLLOW_SECONDS = 3.0


def env_file_path() -> Path:
    var_dir = Path(os.environ.get("ACADEMY_VAR_DIR") or BASE_DIR / "var")
    return var_dir / "devstack.env"


def env_file_read(path: Path) -> dict[str, str]:
    """NAME=VALUE lines, as the launcher writes them (a value the shell would split is
    single-quoted, as SCALING_FLEETS' JSON)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1].replace("'\\''", "'")
            values[name.strip()] = value
    return values


def _positive(raw: str) -> int:
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 1000:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 1 to 1000")
    return int(raw)


def videos_upload(count: int) -> list[int]:
    """``count`` videos in one transaction (``video.burst``): the tick sees all or none."""
    from video.burst import video_burst_upload

    return list(video_burst_upload(count=count, title_prefix="Demo lecture").ids)


def snapshot(video_ids: list[int], group_read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What a newcomer watches, read once: never raises (a part that fails says so)."""
    from django.db import DatabaseError
    from django.db.models import Count

    from scaling.errors import error_one_line
    from scaling.selectors import publication_latest
    from video.models import Video

    out: dict[str, Any] = {}
    try:
        rows = Video.objects.filter(pk__in=video_ids).values("status").annotate(n=Count("pk"))
        out["videos"] = {row["status"]: row["n"] for row in rows}
        latest = publication_latest()
        out["published"] = (
            None if latest is None else (latest.value, f"{latest.slot_start:%H:%M:%S}")
        )
    except DatabaseError as exc:
        out["error"] = f"database: {error_one_line(exc, limit=200, first_line=True)}"
    try:
        out["group"] = group_read()
    except Exception as exc:  # any AWS failure: one part of one line
        out["group_error"] = error_one_line(exc, limit=200, first_line=True)
    return out


def snapshot_line(snap: dict[str, Any], total: int) -> str:
    parts = []
    if "videos" in snap:
        by = snap["videos"]
        parts.append(
            f"videos: {by.get('UPLOADED', 0)} waiting, {by.get('PROCESSING', 0)} processing, "
            f"{by.get('READY', 0)} ready, {by.get('FAILED', 0)} failed (of {total})"
        )
    if "error" in snap:
        parts.append(snap["error"])
    elif snap.get("published") is None:
        parts.append("BacklogCount: nothing published yet")
    else:
        value, slot = snap["published"]
        parts.append(f"BacklogCount {'-' if value is None else value} at {slot}")
    if "group" in snap:
        g = snap["group"]
        parts.append(f"group: desired {g['desired']}, in service {g['in_service']}")
    else:
        parts.append(f"group unreadable ({snap.get('group_error', '?')})")
    return " | ".join(parts)


def loop_closed(snap: dict[str, Any], total: int) -> bool:
    by, group = snap.get("videos", {}), snap.get("group")
    done = by.get("READY", 0) + by.get("FAILED", 0) == total
    return done and group is not None and group["desired"] == group["min"] == group["in_service"]


def group_reader() -> Callable[[], dict[str, Any]]:
    from scaling.aws import autoscaling_client
    from scaling.conf import scaling_settings

    name = scaling_settings().asg_name

    def read() -> dict[str, Any]:
        groups = autoscaling_client(role="status").describe_auto_scaling_groups(
            AutoScalingGroupNames=[name]
        )["AutoScalingGroups"]
        if not groups:
            raise LookupError(f"group {name} does not exist")
        g = groups[0]
        in_service = [i for i in g.get("Instances", []) if i["LifecycleState"] == "InService"]
        return {"desired": g["DesiredCapacity"], "min": g["MinSize"], "in_service": len(in_service)}

    return read


def follow(video_ids: list[int], *, timeout: float) -> int:
    read = group_reader()
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        snap = snapshot(video_ids, read)
        line = snapshot_line(snap, len(video_ids))
        if line != last:
            print(f"{time.strftime('%H:%M:%S')}  {line}", flush=True)
            last = line
        if loop_closed(snap, len(video_ids)):
            minutes, seconds = divmod(int(time.monotonic() - started), 60)
            print(
                f"Loop closed in {minutes}m{seconds:02d}s: every video done, "
                "the group back to its minimum.",
                flush=True,
            )
            return 0
        time.sleep(FOLLOW_SECONDS)
    print(f"Not closed after {timeout:g} s: see make status and the make run output.")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="Upload videos into the stack `make run` started and watch the loop close.",
    )
    parser.add_argument("--videos", type=_positive, default=10, help="How many [10].")
    parser.add_argument("--no-follow", action="store_true", help="Upload and exit.")
    parser.add_argument(
        "--timeout", type=_positive, default=600, help="Stop watching after this many s [600]."
    )
    args = parser.parse_args(argv)
    path = env_file_path()
    if not path.is_file():
        print(f"error: {path} not found: start the stack with make run first", file=sys.stderr)
        return 2
    os.environ.update(env_file_read(path))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    import django
    from django.db import DatabaseError

    django.setup()
    from scaling.errors import error_one_line

    try:
        ids = videos_upload(args.videos)
    except DatabaseError as exc:
        print(f"error: no video uploaded ({error_one_line(exc)})", file=sys.stderr)
        return 1
    print(
        f"Uploaded {len(ids)} videos (ids {ids[0]}-{ids[-1]}), each with its SQS job message. "
        "Admin: http://127.0.0.1:8000/admin/video/video/",
        flush=True,
    )
    if args.no_follow:
        return 0
    try:
        return follow(ids, timeout=args.timeout)
    except KeyboardInterrupt:
        print("\nStopped watching; the videos go on.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
