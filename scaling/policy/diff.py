"""What would change if the requests replaced what AWS holds, field by field.

``describe_*`` answers carry keys AWS adds and leave out keys at their API
default; both are allowed for, so that an aligned policy reads as unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Keys AWS adds when it reads a thing back; never part of what we install.
_READ_ONLY_KEYS = frozenset(
    {
        "PolicyARN",
        "Alarms",
        "AlarmArn",
        "AlarmConfigurationUpdatedTimestamp",
        "StateValue",
        "StateReason",
        "StateReasonData",
        "StateUpdatedTimestamp",
        "StateTransitionedTimestamp",
        "ResponseMetadata",
    }
)
# What the API assumes for a key that describe_* leaves out.
_API_DEFAULTS: dict[str, Any] = {
    "Enabled": True,
    "TargetTrackingConfiguration.DisableScaleIn": False,
    "ActionsEnabled": True,
}


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any

    def line(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}

    def drift_text(self, *, strip: str = "", width: int = 160) -> str:
        """The change as --check words it: what AWS holds ("installed") against what the
        command would install ("asked"), e.g. ``TargetValue 3 installed, 5 asked``.
        ``strip`` drops a path prefix the caller's label already says."""
        path = self.path.removeprefix(strip)
        return f"{path} {_brief(self.old, width)} installed, {_brief(self.new, width)} asked"


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True, default=str)


def _brief(value: Any, width: int) -> str:
    """A value on part of one line: whole numbers without ".0", strings unquoted, long
    values cut (--json carries them whole)."""
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, str) and value:
        text = value
    else:
        text = _show(value)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _same(old: Any, new: Any) -> bool:
    numbers = (int, float)
    if (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    ):
        return float(old) == float(new)
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return not _diff(old, new, "")
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> list[FieldChange]:
    changes: list[FieldChange] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}.{key}" if prefix else key
        if not prefix and key in _READ_ONLY_KEYS:
            continue
        if key not in new:
            if not _empty(old[key]) and not _same(old[key], _API_DEFAULTS.get(path)):
                changes.append(FieldChange(path, old[key], None))
            continue
        before = old.get(key, _API_DEFAULTS.get(path))
        after = new[key]
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes.extend(_diff(before, after, path))
        elif (
            isinstance(before, list)
            and isinstance(after, list)
            and len(before) == len(after)
            and all(isinstance(i, Mapping) for i in before + after)
        ):
            for index, (a, b) in enumerate(zip(before, after, strict=True)):
                changes.extend(_diff(a, b, f"{path}[{index}]"))
        elif not _same(before, after):
            changes.append(FieldChange(path, before, after))
    return changes


def config_diff(*, desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldChange]:
    """What would change if ``desired`` replaced ``actual``: whole subtrees where one side
    lacks them, single fields where both have them."""
    return _diff(actual, desired, "")


Action = Literal["created", "updated", "unchanged", "removed", "absent", "kept"]


@dataclass
class ItemResult:
    """One thing the installer owns, and what a run did (or would do) to it."""

    # metrics-collection | target-tracking-policy | wake-policy | wake-alarm | <kind>-alarm
    # (scaling.policy.alarms.ALARM_KINDS) | dashboard | lifecycle-hook | warm-pool |
    # predictive-policy
    kind: str
    name: str
    action: Action
    changes: list[FieldChange] = field(default_factory=list)
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "changes": [c.as_json() for c in self.changes],
            "note": self.note,
        }


def item_for(
    kind: str,
    name: str,
    request: Any,
    existing: Mapping[str, Any] | None,
    desired: Mapping[str, Any] | None = None,
) -> ItemResult:
    """created when nothing is installed, else updated / unchanged by ``config_diff`` of
    ``desired`` (default: the request's params, an ``ApiRequest`` or None) and ``existing``."""
    if existing is None:
        return ItemResult(kind, name, "created")
    wanted = desired if desired is not None else request.params if request else {}
    changes = config_diff(desired=wanted, actual=existing)
    return ItemResult(kind, name, "updated" if changes else "unchanged", changes)
