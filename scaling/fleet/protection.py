"""Scale-in protection at claim time, and the drain question at renewal: the two
things the worker API (``video/views.py``) asks of the fleet, one function each.

A claim from an instance not known to be protected protects it before the claim
answers, so no encode starts on an instance that scale-in may pick. The call is
bounded (one attempt, 2 s at worst: ``scaling.aws.CLAIM_PROTECT_CONFIG``) and
never raises: a job is never held back by AWS. When AWS does not answer, the
claim says ``"protected": false`` and the reconciler (``scaling.fleet.reconcile``)
protects the instance at its next run; meanwhile claims skip AWS for one slot
(``marks.BACKOFF``), so an outage costs one slow claim, not one per claim.

The group's name is in every call: AWS refuses (ValidationError) an instance
that is not in the group, so nothing outside it is ever changed.
"""

from __future__ import annotations

import logging
import re
import time

from botocore.exceptions import BotoCoreError, ClientError

from scaling.aws import fleet_client
from scaling.errors import error_one_line
from scaling.fleet.marks import (
    BACKOFF,
    BACKOFF_NAME,
    BUSY,
    PROTECTED,
    draining_marked,
    is_fresh,
    marks_write,
)
from scaling.fleets import lease_fleet_conf
from scaling.state import StateUnavailable, state_store_get

logger = logging.getLogger("scaling.fleet")

# An EC2 instance id: anything else (a laptop's worker, a test's name) is in no group.
INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")


def aws_error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def instance_protect_for_claim(instance_id: str) -> bool | None:
    """Protect the claiming instance from scale-in; never raises, never waits over ~2 s.

    True: the instance is protected (by this call, or known to be). False: it is
    not (AWS refused, hung or throttled, or the instance is not in the group);
    the reconciler catches up. None: not an EC2 instance id, nothing to protect.
    """
    if not INSTANCE_ID_RE.fullmatch(instance_id):
        return None
    try:
        return _protect(instance_id)
    except Exception as exc:  # a claim never fails because of protection
        logger.warning(
            "Instance NOT protected at claim | instance_id=%s error=%s",
            instance_id,
            error_one_line(exc),
        )
        return False


def _protect(instance_id: str) -> bool:
    conf = lease_fleet_conf()
    store = state_store_get()
    now = time.time()
    try:
        # Busy now: the reconciler's grace before clearing protection counts from here.
        store.marks_set(BUSY, {instance_id: now})
        known_at = store.marks_get(PROTECTED).get(instance_id)
        backoff_until = store.marks_get(BACKOFF).get(BACKOFF_NAME, 0.0)
        store_up = True
    except StateUnavailable as exc:
        # No store: ask AWS every claim, and spend no more time on the store.
        logger.info("Fleet marks unavailable at claim | error=%s", error_one_line(exc))
        known_at, backoff_until, store_up = None, 0.0, False
    if is_fresh(known_at, now=now):
        return True
    if backoff_until > now:
        logger.info(
            "Instance NOT protected at claim | instance_id=%s reason=AWS did not answer a "
            "claim in the last %.0f s; the reconciler will",
            instance_id,
            conf.interval,
        )
        return False
    try:
        fleet_client(for_claim=True).set_instance_protection(
            AutoScalingGroupName=conf.asg_name,
            InstanceIds=[instance_id],
            ProtectedFromScaleIn=True,
        )
    except (BotoCoreError, ClientError) as exc:
        code = aws_error_code(exc)
        if code == "ValidationError":
            reason = f"not an instance of group {conf.asg_name} ({error_one_line(exc)})"
        else:
            # Timed out, refused, throttled, denied: no claim asks again for a slot.
            if store_up:
                marks_write(store, BACKOFF, {BACKOFF_NAME: now + conf.interval})
            reason = error_one_line(exc)
        logger.warning(
            "Instance NOT protected at claim | instance_id=%s reason=%s", instance_id, reason
        )
        return False
    if store_up:
        marks_write(store, PROTECTED, {instance_id: time.time()})
    logger.info(
        "Instance protected from scale-in at claim | instance_id=%s group=%s",
        instance_id,
        conf.asg_name,
    )
    return True


def instance_draining(instance_id: str) -> bool:
    """Whether the instance is leaving the group (its termination is waiting on us):
    its worker should finish the current video and take no other. Never raises."""
    if not INSTANCE_ID_RE.fullmatch(instance_id):
        return False
    try:
        return draining_marked(instance_id, now=time.time())
    except Exception as exc:  # a renewal never fails because of the drain question
        logger.warning(
            "Drain state unknown | instance_id=%s error=%s", instance_id, error_one_line(exc)
        )
        return False
