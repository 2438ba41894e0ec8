"""The audit trail in the admin: read-only, with the fleet and a chart above it.

The chart covers the window a person picks with ``?window=15m|1h|6h|24h`` (links
above it; default the last hour). ``window`` is kept in the list's own links
(filters, sorting, pages) and is never taken for a filter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.safestring import mark_safe

from scaling.audit.charts import (
    CHART_WINDOWS,
    ChartSlot,
    ChartWindow,
    chart_window_parse,
    publication_chart_svg,
)
from scaling.audit.fleet import Fleet, fleet_page_get
from scaling.audit.installed_policy import PolicyOnGroup, installed_policy_get
from scaling.models import MetricPublication
from scaling.selectors import publications_recent

WINDOW_PARAM = "window"


def chart_limit(window: ChartWindow) -> int:
    """Rows the chart may need: the window in the shortest interval (10 s), and a little room."""
    return int(window.span.total_seconds()) // 10 + 10


class WindowChangeList(ChangeList):
    """The change list, with ``window`` left out of the filters (kept in its links)."""

    def get_filters_params(self, params: Any = None) -> Any:
        lookup = super().get_filters_params(params)
        lookup.pop(WINDOW_PARAM, None)
        return lookup


# ModelAdmin[...] is subscriptable at run time only in a host that calls
# django_stubs_ext.monkeypatch(); a host that does not must still load this admin.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[MetricPublication]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(MetricPublication)
class MetricPublicationAdmin(_ModelAdmin):
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
        (
            "Fleet",
            {
                "fields": (
                    "in_service_instances",
                    "desired_capacity",
                    "busy_instances",
                    "protected_instances",
                )
            },
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
        "in_service_instances",
        "desired_capacity",
        "busy_instances",
        "protected_instances",
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

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WindowChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A bad value is no reason to lose the page: the default window and one line.
        window, window_error = chart_window_parse(request.GET.get(WINDOW_PARAM))
        end = timezone.now()
        start = end - window.span
        slots = [
            ChartSlot(
                slot_start=p.slot_start,
                interval_seconds=p.interval_seconds,
                value=p.value,
                source=p.source,
                status=p.status,
                in_service=p.in_service_instances,
                desired=p.desired_capacity,
                busy=p.busy_instances,
                protected=p.protected_instances,
            )
            for p in publications_recent(since=start, limit=chart_limit(window))
        ]
        # The markup is built by our own code from numbers and escaped labels.
        chart = mark_safe(publication_chart_svg(slots=slots, start=start, end=end))  # noqa: S308
        policy = installed_policy_get()
        if isinstance(policy, PolicyOnGroup):
            latest = next((p for p in slots if p.value is not None), None)
            policy_line = (
                f"Installed policy: {policy.policy.mode}, target {policy.policy.target:g}, "
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
            "chart_window": window,
            "chart_window_error": window_error,
            "chart_windows": [(w, _query_with(request, w.key), w == window) for w in CHART_WINDOWS],
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
        if not isinstance(policy, PolicyOnGroup):
            return columns

        @admin.display(description="policy aims for")
        def aims_for(obj: MetricPublication) -> str:
            return "-" if obj.value is None else f"{policy.aim(obj.value)} instances"

        columns.insert(columns.index("source") + 1, aims_for)
        return columns


def _query_with(request: HttpRequest, window: str) -> str:
    """This page's query string with ``window`` set: filters and sorting stay as they are."""
    query = request.GET.copy()
    query[WINDOW_PARAM] = window
    return "?" + query.urlencode()
