"""``install_scaling_policy`` as text: a line a thing, its changes indented under it."""

from __future__ import annotations

import json
from typing import Literal

from scaling.policy.install import PolicyRun

Style = Literal["", "warning", "success"]
_VERB = {"created": "create", "updated": "update", "removed": "remove"}


def policy_run_lines(run: PolicyRun) -> list[tuple[str, Style]]:
    """The run as lines of text, each with its style ("" plain)."""
    lines: list[tuple[str, Style]] = []
    if run.options is not None:
        o = run.options
        lines.append(
            (
                f"Group {run.asg_name} ({run.region}), mode {o.mode}: {o.target_derivation}; "
                f"warmup {o.warmup_seconds} s; alarm wait {o.alarm_wait_seconds:g} s; "
                f"drain timeout {o.drain_timeout_seconds} s.",
                "",
            )
        )
    else:
        lines.append((f"Group {run.asg_name} ({run.region}): uninstall.", ""))
    lines.extend((warning, "warning") for warning in run.warnings)
    counts: dict[str, int] = {}
    for item in run.items:
        counts[item.action] = counts.get(item.action, 0) + 1
        action: str = item.action
        if run.dry_run and action in _VERB:
            action = f"would {_VERB[action]}"
        note = f" ({item.note})" if item.note else ""
        lines.append((f"{item.kind} {item.name}: {action}{note}", ""))
        lines.extend((f"  {change.line()}", "") for change in item.changes)
    summary = ", ".join(f"{n} {action}" for action, n in counts.items())
    if not run.dry_run:
        lines.append((f"Done: {summary}.", "success"))
        return lines
    lines.append(("Requests that would be sent:", ""))
    lines.append((json.dumps([r.as_json() for r in run.requests], indent=2, sort_keys=True), ""))
    lines.append((f"Dry run: {len(run.requests)} write request(s) not sent ({summary}).", ""))
    return lines
