"""What the fleet code remembers between slots and between processes, in the claims
store (``scaling.state``: Redis, else a directory; per environment).

Three kinds of mark, each ``{instance id: a time (epoch seconds)}``:

- ``busy``: until when the instance is known to have held a live lease: a claim's
  time; for the reconciler, which sees a lease only once a slot, the start of the
  next slot (the lease may last until then); or when it was first seen protected
  and idle. The reconciler clears an instance's protection only once this is a
  whole slot old: a worker that takes its next video within seconds does not flap
  protection off and on.
- ``protected``: when the instance was last known to be protected (the claim's
  own call, or the reconciler's read). Fresh for a few slots: a claim on a known
  protected instance costs no AWS call.
- ``draining``: when the instance was last seen terminating (``Terminating:Wait``):
  the renew answer tells its worker to finish the current video and take no other.

And one for the claim path: ``backoff`` {"autoscaling": until when claims skip AWS}
after a claim's call timed out, was refused or was throttled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from scaling.conf import scaling_settings
from scaling.errors import error_one_line
from scaling.state import StateStore, StateUnavailable, state_store_get

logger = logging.getLogger("scaling.fleet")

BUSY = "busy"
PROTECTED = "protected"
DRAINING = "draining"
BACKOFF = "backoff"
BACKOFF_NAME = "autoscaling"
# A mark is fresh for this many slots: the reconciler renews the ones that still
# hold each slot, so a stale one means the reconciler has not run for a while.
FRESH_SLOTS = 3


def fresh_seconds() -> float:
    return FRESH_SLOTS * scaling_settings().interval


def is_fresh(at: float | None, *, now: float) -> bool:
    return at is not None and now - at < fresh_seconds()


def marks_read(store: StateStore, kind: str) -> dict[str, float]:
    """The marks of a kind; none when the store does not answer (logged)."""
    try:
        return store.marks_get(kind)
    except StateUnavailable as exc:
        logger.warning("Fleet marks unreadable | kind=%s error=%s", kind, error_one_line(exc))
        return {}


def marks_write(store: StateStore, kind: str, values: Mapping[str, float]) -> bool:
    if not values:
        return True
    try:
        store.marks_set(kind, values)
    except StateUnavailable as exc:
        logger.warning("Fleet marks not written | kind=%s error=%s", kind, error_one_line(exc))
        return False
    return True


def marks_drop(store: StateStore, kind: str, names: Iterable[str]) -> bool:
    names = list(names)
    if not names:
        return True
    try:
        store.marks_clear(kind, names)
    except StateUnavailable as exc:
        logger.warning("Fleet marks not cleared | kind=%s error=%s", kind, error_one_line(exc))
        return False
    return True


def draining_marked(instance_id: str, *, now: float) -> bool:
    """Whether the reconciler saw this instance terminating within the last few slots."""
    if not instance_id:
        return False
    return is_fresh(marks_read(state_store_get(), DRAINING).get(instance_id), now=now)
