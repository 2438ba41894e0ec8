"""Pause a fleet's scale-in for a while, and resume it (``manage.py scaling_pause``).

The mechanism: install_scaling_policy's target tracking policy is put again with
``TargetTrackingConfiguration.DisableScaleIn`` true, and put back with false when
the pause ends. The request is the installer's own ``PutScalingPolicy`` for that
policy, with every field as AWS holds it (target, metric, warmup: whatever was
installed) and only DisableScaleIn changed. Why not ``SuspendProcesses(["Terminate"])``:

- scale-out keeps working: target tracking still adds capacity when videos wait,
  the wake-from-zero alarm still wakes an empty group, only this policy's scale-in
  stops (target tracking simply never lowers the desired capacity);
- suspending Terminate has side effects an operator pausing for a deploy or a demo
  does not ask for: unhealthy instances are no longer terminated and replaced,
  AZRebalance can launch without terminating (the group overshoots its desired
  capacity), and a lower desired capacity from anywhere leaves instances running;
- it needs no new kind of permission: PutScalingPolicy is already the installer's.

What a pause does not stop: a lower desired capacity set by a person or a
scheduled action, another policy on the group, instance refresh, maximum instance
lifetime. Re-running install_scaling_policy during a pause writes DisableScaleIn
false again (its request): ``scaling_status`` then says the pause is not in force.

Who, why and until when is a ``ScalingPause`` row, one active row per fleet at
most: pausing again moves ``until`` to the later end (the policy is written once).
The tick ends a pause whose time is up (``pause_expire``, bounded, never raises),
``--resume`` ends it early, and ``install_scaling_policy --uninstall`` ends it with
the policy (``pauses_end_uninstalled``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from scaling.aws import autoscaling_client, fleet_client
from scaling.database import connection_drop
from scaling.deadline import deadline
from scaling.errors import error_one_line, error_text
from scaling.fleets import Fleet
from scaling.models import PauseEnd, ScalingPause
from scaling.policy.requests import TARGET_POLICY_NAME, ApiRequest

logger = logging.getLogger("scaling.pause")

MIN_MINUTES, MAX_MINUTES = 1, 1440
REASON_LIMIT = 500
# The tick gives the check at most this long (two short AWS calls when a pause is due).
PAUSE_CHECK_SECONDS = 4.0
# Less than this left in the slot: the check waits for the next tick.
PAUSE_CHECK_MIN_SECONDS = 1.0
_AWS_ERRORS = (BotoCoreError, ClientError, ResponseParserError)


class PauseUsageError(Exception):
    """A bad argument (minutes, reason, who): the command exits 2."""


class PauseError(Exception):
    """The group or AWS refuses (no policy, a failed call): the command exits 1."""


@dataclass(frozen=True)
class PauseOutcome:
    """What a pause or a resume did: the row (None: nothing was paused) and a sentence."""

    pause: ScalingPause | None
    action: str  # paused | extended | resumed | not-paused
    message: str
    policy_written: bool = False

    def as_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        return {
            "action": self.action,
            "message": self.message,
            "policy_written": self.policy_written,
            "pause": pause_json(self.pause, now=now),
        }


def minutes_parse(raw: object) -> int:
    try:
        minutes = int(str(raw).strip())
    except ValueError:
        raise PauseUsageError(f"--minutes must be a whole number, got {raw!r}") from None
    if not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise PauseUsageError(
            f"--minutes must be between {MIN_MINUTES} and {MAX_MINUTES} (a day), got {minutes}"
        )
    return minutes


def text_parse(raw: str | None, flag: str) -> str:
    text = " ".join((raw or "").split())
    if not text:
        raise PauseUsageError(f"{flag} must say something (who or why: it is recorded)")
    if len(text) > REASON_LIMIT:
        raise PauseUsageError(f"{flag} must be at most {REASON_LIMIT} characters")
    return text


def pause_json(pause: ScalingPause | None, *, now: datetime | None = None) -> Any:
    """A pause as ``scaling_status --json``'s ``pause`` and the command show it; None: none."""
    if pause is None:
        return None
    left = max(0, int((pause.until - (now or timezone.now())).total_seconds()))
    return {
        "fleet": pause.fleet,
        "asg_name": pause.asg_name,
        "started_at": pause.started_at.isoformat(),
        "until": pause.until.isoformat(),
        "seconds_left": 0 if pause.ended_at else left,
        "reason": pause.reason,
        "by": pause.by,
        "ended_at": pause.ended_at.isoformat() if pause.ended_at else None,
        "end_reason": pause.end_reason or None,
    }


def pause_line(pause: ScalingPause) -> str:
    """``Scale-in paused until 14:05 UTC: deploy (alice)``: the admin's and the status's line."""
    until = pause.until.astimezone(UTC)
    return f"Scale-in paused until {until:%H:%M} UTC: {pause.reason} ({pause.by})"


def pause_active(fleet: str) -> ScalingPause | None:
    """The fleet's active pause (its time may be up: the next tick ends it), or None."""
    return ScalingPause.objects.filter(fleet=fleet, ended_at__isnull=True).first()


def pause_for_install(fleet: str) -> tuple[bool, str]:
    """Whether an install must keep scale-in off (the fleet is paused), and the warning
    that says so ("" when there is nothing to say). Never raises for the database."""
    try:
        pause = pause_active(fleet)
    except DatabaseError as exc:
        connection_drop()
        return False, f"Scale-in pauses not read ({error_one_line(exc)}): none assumed."
    if pause is None:
        return False, ""
    return True, f"{pause_line(pause)}: DisableScaleIn stays true until it ends."


# AWS: the installer's target tracking policy, read back and put again ------------------


def _call(operation: str, call: Any) -> Any:
    try:
        return call()
    except _AWS_ERRORS as exc:
        raise PauseError(f"AWS call {operation} failed: {error_text(exc)[:400]}") from exc


def target_policy_read(client: Any, asg_name: str) -> dict[str, Any] | None:
    """The installer's target tracking policy on the group as AWS holds it, or None."""
    answer = _call(
        "DescribePolicies",
        lambda: client.describe_policies(
            AutoScalingGroupName=asg_name, PolicyNames=[TARGET_POLICY_NAME]
        ),
    )
    found = [
        p
        for p in answer.get("ScalingPolicies", [])
        if p.get("PolicyName") == TARGET_POLICY_NAME
        and p.get("PolicyType") == "TargetTrackingScaling"
    ]
    return found[0] if found else None


def scale_in_disabled(policy: dict[str, Any]) -> bool:
    return bool(policy.get("TargetTrackingConfiguration", {}).get("DisableScaleIn", False))


def scale_in_request_build(policy: dict[str, Any], *, disable: bool) -> ApiRequest:
    """The installer's PutScalingPolicy for its target tracking policy, every field as
    read back, DisableScaleIn set to ``disable``."""
    config = {**policy["TargetTrackingConfiguration"], "DisableScaleIn": disable}
    params: dict[str, Any] = {
        "AutoScalingGroupName": policy["AutoScalingGroupName"],
        "PolicyName": TARGET_POLICY_NAME,
        "PolicyType": "TargetTrackingScaling",
    }
    for key in ("EstimatedInstanceWarmup", "Enabled"):
        if key in policy:
            params[key] = policy[key]
    params["TargetTrackingConfiguration"] = config
    return ApiRequest("autoscaling", "PutScalingPolicy", params)


def _scale_in_set(client: Any, policy: dict[str, Any], *, disable: bool) -> None:
    request = scale_in_request_build(policy, disable=disable)
    _call(request.operation, lambda: client.put_scaling_policy(**request.params))


# Pause, resume, expire, uninstall --------------------------------------------------------


def pause_start(
    *, fleet: Fleet, minutes: int, reason: str, by: str, now: datetime | None = None
) -> PauseOutcome:
    """Stop the fleet's scale-in until ``now + minutes``; a second pause moves the end to
    the later one (one row, the policy written once). PauseError: no policy, AWS refused."""
    now = now or timezone.now()
    until = now + timedelta(minutes=minutes_parse(minutes))
    reason, by = text_parse(reason, "--reason"), text_parse(by, "--by")[:150]
    client = autoscaling_client(role="installer")
    try:
        with transaction.atomic():
            active = (
                ScalingPause.objects.select_for_update()
                .filter(fleet=fleet.name, ended_at__isnull=True)
                .first()
            )
            policy = target_policy_read(client, fleet.asg_name)
            if policy is None:
                raise PauseError(
                    f"No {TARGET_POLICY_NAME} policy on {fleet.asg_name}: nothing to pause "
                    "(run manage.py install_scaling_policy first)."
                )
            if active is None and scale_in_disabled(policy):
                raise PauseError(
                    f"{TARGET_POLICY_NAME} on {fleet.asg_name} already has DisableScaleIn "
                    "true, set outside scaling_pause: left as it is (nothing to resume later)."
                )
            # The row first, the policy last: a refused write rolls the row back.
            if active is None:
                pause = ScalingPause.objects.create(
                    fleet=fleet.name,
                    asg_name=fleet.asg_name,
                    started_at=now,
                    until=until,
                    reason=reason,
                    by=by,
                )
                action = "paused"
            else:
                active.until, active.reason, active.by = max(active.until, until), reason, by
                active.save(update_fields=["until", "reason", "by"])
                pause, action = active, "extended"
            written = not scale_in_disabled(policy)  # an extension re-asserts it only if undone
            if written:
                _scale_in_set(client, policy, disable=True)
    except IntegrityError as exc:
        raise PauseError(
            f"Another scaling_pause for fleet {fleet.name} ran at the same time: run it again "
            f"({error_one_line(exc, first_line=True)})."
        ) from exc
    logger.info(
        "Scale-in %s | fleet=%s asg=%s until=%s by=%s reason=%s",
        action,
        fleet.name,
        fleet.asg_name,
        pause.until.isoformat(),
        pause.by,
        pause.reason,
    )
    return PauseOutcome(pause, action, f"Fleet {fleet.name}: {pause_line(pause)}.", written)


def _pause_end(
    client: Any, pause: ScalingPause, *, now: datetime, end: PauseEnd
) -> tuple[bool, str]:
    """Scale-in back on the pause's policy (when it is there and still paused), then the
    row ended. Returns whether the policy was written and a note when it was not."""
    policy = target_policy_read(client, pause.asg_name)
    note = ""
    if policy is None:
        note = f"no {TARGET_POLICY_NAME} policy on {pause.asg_name} any more"
    elif not scale_in_disabled(policy):
        note = f"{TARGET_POLICY_NAME} on {pause.asg_name} was already scaling in"
    else:
        _scale_in_set(client, policy, disable=False)
    pause.ended_at, pause.end_reason = now, end
    pause.save(update_fields=["ended_at", "end_reason"])
    logger.info(
        "Scale-in pause ended | fleet=%s asg=%s end=%s%s",
        pause.fleet,
        pause.asg_name,
        end,
        f" note={note}" if note else "",
    )
    return not note, note


def pause_resume(*, fleet: Fleet, now: datetime | None = None) -> PauseOutcome:
    """End the fleet's pause early: scale-in on again, the row ended (``resumed``)."""
    now = now or timezone.now()
    client = autoscaling_client(role="installer")
    with transaction.atomic():
        pause = (
            ScalingPause.objects.select_for_update()
            .filter(fleet=fleet.name, ended_at__isnull=True)
            .first()
        )
        if pause is None:
            return PauseOutcome(
                None,
                "not-paused",
                f"Fleet {fleet.name}: scale-in is not paused; nothing to resume.",
            )
        written, note = _pause_end(client, pause, now=now, end=PauseEnd.RESUMED)
    message = f"Fleet {fleet.name}: scale-in resumed on {fleet.asg_name}"
    return PauseOutcome(pause, "resumed", message + (f" ({note})." if note else "."), written)


def pause_expire(*, now: datetime, seconds: float) -> int:
    """The tick's check: every pause whose time is up ends (scale-in back on), within
    ``seconds`` at most (less than a second: left to the next tick). Never raises: a
    database or AWS failure is one log line, and the next tick tries again."""
    if seconds < PAUSE_CHECK_MIN_SECONDS:
        return 0
    ended = 0
    try:
        with deadline(seconds, "the scale-in pause check"):
            due = ScalingPause.objects.filter(ended_at__isnull=True, until__lte=now)
            if not due.exists():
                return 0
            client = fleet_client()
            for pk in due.values_list("pk", flat=True):
                with transaction.atomic():
                    pause = (
                        ScalingPause.objects.select_for_update(skip_locked=True)
                        .filter(pk=pk, ended_at__isnull=True, until__lte=now)
                        .first()
                    )
                    if pause is not None:  # None: a pause or --resume holds it, or it moved
                        _pause_end(client, pause, now=now, end=PauseEnd.EXPIRED)
                        ended += 1
    except Exception as exc:  # the tick must not fail for a pause
        connection_drop()  # a hung or failed query leaves no half-read connection behind
        logger.warning("Scale-in pause check failed | reason=%s", error_one_line(exc))
    return ended


def pauses_end_uninstalled(*, asg_name: str, now: datetime | None = None) -> list[str]:
    """The group's active pauses end with its policy (``uninstalled``): a pause never
    survives an uninstall. Never raises: a warning line for the run instead."""
    try:
        count = ScalingPause.objects.filter(asg_name=asg_name, ended_at__isnull=True).update(
            ended_at=now or timezone.now(), end_reason=PauseEnd.UNINSTALLED
        )
    except DatabaseError as exc:
        return [f"Warning: a scale-in pause of {asg_name} may still be recorded: {exc}"[:400]]
    except Exception as exc:  # no database for this run: nothing paused
        logger.info("Scale-in pauses not read | asg=%s reason=%s", asg_name, error_one_line(exc))
        return []
    return [f"Scale-in pause of {asg_name} ended with its policy."] if count else []
