from __future__ import annotations

from django.db import models


class PublicationSource(models.TextChoices):
    DB = "db", "Database"
    SQS = "sqs", "SQS queue depth"


class PublicationStatus(models.TextChoices):
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Failed"


class MetricPublication(models.Model):
    """One interval slot's outcome: what was measured, from where, and whether it reached AWS."""

    fleet = models.CharField(
        max_length=32,
        default="video",
        help_text="The worker fleet measured (scaling.fleets); rows from before fleets: video.",
    )
    slot_start = models.DateTimeField(db_index=True, help_text="Start of the interval slot (UTC).")
    interval_seconds = models.PositiveSmallIntegerField()
    value = models.IntegerField(
        null=True, blank=True, help_text="The measured backlog; empty when nothing was measured."
    )
    source = models.CharField(max_length=8, choices=PublicationSource.choices, blank=True)
    status = models.CharField(max_length=16, choices=PublicationStatus.choices)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(help_text="Time the tick took, claim to record.")
    uploaded_count = models.IntegerField(null=True, blank=True)
    processing_count = models.IntegerField(null=True, blank=True)
    oldest_waiting_seconds = models.FloatField(null=True, blank=True)
    recovered_count = models.IntegerField(
        null=True,
        blank=True,
        help_text="Videos whose lease had expired, sent back to the queue or failed in this slot; "
        "empty when recovery did not run.",
    )
    busy_instances = models.IntegerField(
        null=True,
        blank=True,
        help_text="Instances of the group holding a live lease; empty when the fleet "
        "reconciler did not run.",
    )
    protected_instances = models.IntegerField(
        null=True,
        blank=True,
        help_text="Instances of the group protected from scale-in after the reconciler's "
        "changes; empty when it did not run.",
    )
    in_service_instances = models.IntegerField(
        null=True,
        blank=True,
        help_text="Instances of the group in LifecycleState InService when the reconciler read "
        "it; empty when the group was not read in this slot.",
    )
    desired_capacity = models.IntegerField(
        null=True,
        blank=True,
        help_text="The group's DesiredCapacity when the reconciler read it; empty when the "
        "group was not read in this slot.",
    )
    asg_name = models.CharField(max_length=255)
    recorded_at = models.DateTimeField(auto_now_add=True)
    spooled = models.BooleanField(
        default=False, help_text="Written late from the spool: the database was down at the time."
    )

    class Meta:
        ordering = ("-slot_start",)
        indexes = (models.Index(fields=("status", "slot_start"), name="publication_status_idx"),)
        constraints = (
            # One row per fleet and slot: a second record for it is ignored.
            models.UniqueConstraint(fields=("fleet", "slot_start"), name="publication_fleet_slot"),
        )

    def __str__(self) -> str:
        value = "-" if self.value is None else self.value
        return (
            f"{self.fleet} {self.slot_start:%Y-%m-%d %H:%M:%S} {self.status} {value} "
            f"({self.source or 'none'})"
        )


class SlotClaim(models.Model):
    """The claim on one environment's slot that does not depend on Redis (DESIGN.md
    invariant 2): a tick publishes only if it inserted this row, or, with the database
    down, if Redis granted the slot. Pruned with the audit rows."""

    key = models.CharField(max_length=255, unique=True, help_text="publishing.slots.slot_claim_key")
    slot_start = models.DateTimeField(db_index=True, help_text="Start of the slot (UTC).")
    claimed_at = models.DateTimeField(auto_now_add=True)
    redis_answered = models.BooleanField(
        help_text="Whether Redis granted the slot first; false: Redis was unreachable and "
        "this row alone decided."
    )

    class Meta:
        ordering = ("-slot_start",)

    def __str__(self) -> str:
        return self.key


class PauseEnd(models.TextChoices):
    RESUMED = "resumed", "Resumed by scaling_pause --resume"
    EXPIRED = "expired", "Its time was up (the tick resumed it)"
    UNINSTALLED = "uninstalled", "The policy was uninstalled"


class ScalingPause(models.Model):
    """A pause of one fleet's scale-in (``manage.py scaling_pause``, scaling.policy.pause):
    who asked, why, until when, and how it ended. At most one active row (no
    ``ended_at``) per fleet: pausing again moves ``until``, never stacks a second row."""

    fleet = models.CharField(max_length=32, help_text="The worker fleet (scaling.fleets).")
    asg_name = models.CharField(max_length=255)
    started_at = models.DateTimeField(help_text="When the first pause of this row began (UTC).")
    until = models.DateTimeField(help_text="When scale-in comes back by itself (UTC).")
    reason = models.CharField(max_length=500, help_text="Why (the latest pause's reason).")
    by = models.CharField(max_length=150, help_text="Who (the OS user, or --by).")
    ended_at = models.DateTimeField(null=True, blank=True, db_index=True)
    end_reason = models.CharField(max_length=16, choices=PauseEnd.choices, blank=True)

    class Meta:
        ordering = ("-started_at",)
        constraints = (
            models.UniqueConstraint(
                fields=("fleet",),
                condition=models.Q(ended_at__isnull=True),
                name="scaling_pause_one_active_per_fleet",
            ),
        )

    def __str__(self) -> str:
        state = f"ended {self.end_reason}" if self.ended_at else f"until {self.until:%H:%M} UTC"
        return f"{self.fleet} scale-in paused {state}: {self.reason} ({self.by})"
