"""The audit trail in the admin: read-only, with the fleet and a chart of the last day above it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.safestring import mark_safe

from scaling.audit.charts import ChartSlot, publication_chart_svg
from scaling.audit.fleet import Fleet, fleet_page_get
from scaling.audit.status import InstalledPolicy, installed_policy_get
from scaling.models import MetricPublication
from scaling.selectors import publications_recent

CHART_WINDOW = timedelta(hours=24)
# A day of the shortest interval (10 s), and a little room.
CHART_LIMIT = 24 * 3600 // 10 + 10


@admin.register(MetricPublication)
class MetricPublicationAdmin(admin.ModelAdmin[MetricPublication]):
    """An audit record is written by the publisher only: nobody adds, edits or deletes one."""

    list_display = (
        "slot_start",
        "status",
        "value",
        "source",
        "uploaded_count",
        "processing_count",
        "duration_ms",
        "spooled",
        "asg_name",
    )
    list_filter = ("source", "status", "spooled")
    date_hierarchy = "slot_start"
    search_fields = ("error", "asg_name")
    ordering = ("-slot_start",)
    change_list_template = "admin/scaling/metricpublication/change_list.html"
    fieldsets = (
        ("Slot", {"fields": ("slot_start", "interval_seconds", "asg_name")}),
        ("Outcome", {"fields": ("status", "value", "source", "error")}),
        (
            "Measurement",
            {"fields": ("uploaded_count", "processing_count", "oldest_waiting_seconds")},
        ),
        ("Record", {"fields": ("duration_ms", "recorded_at", "spooled")}),
    )
    readonly_fields = (
        "slot_start",
        "interval_seconds",
        "asg_name",
        "status",
        "value",
        "source",
        "error",
        "uploaded_count",
        "processing_count",
        "oldest_waiting_seconds",
        "duration_ms",
        "recorded_at",
        "spooled",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # False even for superusers: the change view becomes a read-only view
        # and Django refuses any POST to it with 403.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        end = timezone.now()
        start = end - CHART_WINDOW
        slots = [
            ChartSlot(
                slot_start=p.slot_start,
                interval_seconds=p.interval_seconds,
                value=p.value,
                source=p.source,
                status=p.status,
            )
            for p in publications_recent(since=start, limit=CHART_LIMIT)
        ]
        # The markup is built by our own code from numbers and escaped labels.
        chart = mark_safe(publication_chart_svg(slots=slots, start=start, end=end))  # noqa: S308
        policy = installed_policy_get()
        if isinstance(policy, InstalledPolicy):
            latest = next((p for p in slots if p.value is not None), None)
            policy_line = (
                f"Installed policy: {policy.mode}, target {policy.target:g}, "
                f"group min {policy.min_size} max {policy.max_size}"
            )
            if latest is not None:
                policy_line += (
                    f"; for the latest value ({latest.value}) target tracking aims for "
                    f"about {policy.aim(latest.value or 0)} instances"
                )
        else:
            policy_line = policy
        fleet = fleet_page_get()
        context = {
            **(extra_context or {}),
            "publication_chart": chart,
            "policy_line": policy_line,
            # The group's instances (a short AWS read, cached) with their videos; or why not.
            "fleet": fleet if isinstance(fleet, Fleet) else None,
            "fleet_error": fleet if isinstance(fleet, str) else "",
        }
        return super().changelist_view(request, extra_context=context)

    def get_list_display(
        self, request: HttpRequest
    ) -> list[str | Callable[[MetricPublication], str | bool]]:
        policy = installed_policy_get()
        columns: list[str | Callable[[MetricPublication], str | bool]] = list(self.list_display)
        if not isinstance(policy, InstalledPolicy):
            return columns

        @admin.display(description="policy aims for")
        def aims_for(obj: MetricPublication) -> str:
            return "-" if obj.value is None else f"{policy.aim(obj.value)} instances"

        columns.insert(columns.index("source") + 1, aims_for)
        return columns
