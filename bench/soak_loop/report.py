"""The loop soak's verdict: one table, PASS only when every count that must be 0 is 0."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.common import verdict_table


@dataclass
class SoakLoopReport:
    minutes: float
    seed: int
    faults_enabled: list[str]
    settings: str = ""  # slots, lease, job, attempts, target: one line
    videos: int = 0
    bursts: int = 0
    ready: int = 0
    failed: int = 0
    failed_reasons: dict[str, int] = field(default_factory=dict)
    failed_without_real_losses: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    finished_twice: list[int] = field(default_factory=list)
    extra_attempts: int = 0
    unexplained_attempts: list[str] = field(default_factory=list)
    losses_by_cause: dict[str, int] = field(default_factory=dict)
    busy_scaled_in: list[str] = field(default_factory=list)
    group_final: str = ""  # "desired 0, running 0 (minimum 0)"
    group_at_minimum: bool = False
    drained_after: float | None = None  # seconds after the window until settled
    slots: int = 0
    published_db: int = 0
    published_sqs: int = 0
    slots_failed: int = 0
    slots_no_record: int = 0
    duplicates: int = 0
    made_up_zeros: list[str] = field(default_factory=list)
    sqs_zeros_under_backlog: list[str] = field(default_factory=list)
    redis_slots: int = 0
    redis_slots_unpublished: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    worker_faults_on_videos: int = 0
    ledger_gaps: list[int] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    tracebacks: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.stuck
            or self.finished_twice
            or self.unexplained_attempts
            or self.busy_scaled_in
            or not self.group_at_minimum
            or self.duplicates
            or self.made_up_zeros
            or self.failed_without_real_losses
            or self.exited
        )

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def rows(self) -> list[tuple[str, object]]:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.failed_reasons.items()))
        causes = ", ".join(f"{c} {n}" for c, n in sorted(self.losses_by_cause.items()))
        drained = "-" if self.drained_after is None else f"{self.drained_after:.0f} s"
        return [
            ("videos uploaded", f"{self.videos} in {self.bursts} bursts"),
            ("READY", self.ready),
            ("FAILED", f"{self.failed}" + (f" ({reasons})" if reasons else "")),
            ("FAILED without real losses", len(self.failed_without_real_losses)),
            ("stuck after the drain", len(self.stuck)),
            ("finished twice", len(self.finished_twice)),
            (
                "extra attempts",
                f"{self.extra_attempts}" + (f" (losses: {causes})" if causes else ""),
            ),
            ("unexplained attempts", len(self.unexplained_attempts)),
            ("busy instances scaled in", len(self.busy_scaled_in)),
            (
                "group back to its minimum",
                f"{'yes' if self.group_at_minimum else 'NO'}, "
                f"{self.group_final}, {drained} after the window",
            ),
            (
                "slots",
                f"{self.slots}: {self.published_db} from db, {self.published_sqs} from "
                f"sqs, {self.slots_failed} failed, {self.slots_no_record} no record",
            ),
            ("duplicates", self.duplicates),
            ("made-up zeros", len(self.made_up_zeros)),
            ("sqs zeros under a backlog", len(self.sqs_zeros_under_backlog)),
            (
                "slots in Redis outages",
                f"{self.redis_slots}, {self.redis_slots_unpublished} without a datapoint",
            ),
            ("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))),
            ("worker faults on a video", self.worker_faults_on_videos),
            ("ledger gaps", len(self.ledger_gaps)),
            ("processes exited", ", ".join(self.exited) or "none"),
        ]

    def table(self) -> str:
        title = f"soak-loop: {self.minutes:g} min, seed {self.seed}, {self.settings}"
        return verdict_table(title, self.rows(), ok=self.ok)
