"""The audit trail in the admin: read-only, with the fleet and a chart above it.

The chart covers the window a person picks with ``?window=15m|1h|6h|24h`` (links
above it; default the last hour). ``window`` is kept in the list's own links
(filters, sorting, pages) and is never taken for a filter.

One fleet at a time (scaling.fleets): ``?fleet=NAME`` is the list's "By fleet"
filter and drives the chart, the group's instances and the policy line above it
(links above the chart, like the window's). Without it the list shows every
fleet's rows and the rest the default fleet; an unknown name is one line on the
page, and the default fleet is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
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
from scaling.audit.forecast import forecast_page_get
from scaling.audit.installed_policy import PolicyOnGroup, installed_policy_get
from scaling.audit.leases import work_untracked
from scaling.fleets import Fleet as FleetConfig
from scaling.fleets import UnknownFleet, fleet_get, fleet_names
from scaling.models import MetricPublication, ScalingPause
from scaling.policy.pause import pause_active, pause_line
from scaling.selectors import publications_recent

WINDOW_PARAM = "window"
FLEET_PARAM = "fleet"


def chart_fleet_parse(asked: str | None) -> tuple[FleetConfig, str]:
    """The fleet asked for (none: the default fleet), or the default and one line that
    says why the value was not used."""
    if asked is None or not asked.strip():
        return fleet_get(None), ""
    try:
        return fleet_get(asked.strip()[:40]), ""
    except UnknownFleet as exc:
        default = fleet_get(None)
        return default, f"{exc} Showing fleet {default.name}."


class FleetFilter(admin.SimpleListFilter):
    """By fleet: the configured fleets; the choice also drives the chart above the list."""

    title = "fleet"
    parameter_name = FLEET_PARAM

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in fleet_names()]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[MetricPublication]
    ) -> QuerySet[MetricPublication]:
        if self.value() is None:
            return queryset
        # An unknown name shows the default fleet, as the chart does (and says why).
        return queryset.filter(fleet=chart_fleet_parse(self.value())[0].name)


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


class ReadOnlyAdmin:
    """Rows written by the code only (the publisher, scaling_pause): nobody adds, edits or
    deletes one in the admin, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # False even for superusers: the change view becomes a read-only view
        # and Django refuses any POST to it with 403.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MetricPublication)
class MetricPublicationAdmin(ReadOnlyAdmin, _ModelAdmin):
    """An audit record is written by the publisher only: nobody adds, edits or deletes one."""

    list_display = (
        "slot_start",
        "fleet",
        "status",
        "value",
        "source",
        "uploaded_count",
        "processing_count",
        "duration_ms",
        "spooled",
        "asg_name",
    )
    list_filter = (FleetFilter, "source", "status", "spooled")
    date_hierarchy = "slot_start"
    search_fields = ("error", "asg_name", "fleet")
    ordering = ("-slot_start",)
    change_list_template = "admin/scaling/metricpublication/change_list.html"
    fieldsets = (
        ("Slot", {"fields": ("slot_start", "interval_seconds", "fleet", "asg_name")}),
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
        "fleet",
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

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WindowChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # A bad value is no reason to lose the page: the default window and one line.
        window, window_error = chart_window_parse(request.GET.get(WINDOW_PARAM))
        fleet_config, fleet_config_error = chart_fleet_parse(request.GET.get(FLEET_PARAM))
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
            for p in publications_recent(
                since=start, limit=chart_limit(window), fleet=fleet_config.name
            )
        ]
        # AWS's load forecast for the window (cached; one short attempt), or why none.
        forecast = forecast_page_get(
            asg_name=fleet_config.asg_name, start=start, end=end, window=window.key
        )
        predicted = [(datetime.fromisoformat(p.at), p.value) for p in forecast.load]
        # The markup is built by our own code from numbers and escaped labels.
        chart = mark_safe(  # noqa: S308
            publication_chart_svg(
                slots=slots, start=start, end=end, fleet=fleet_config.name, forecast=predicted
            )
        )
        policy = installed_policy_get(asg_name=fleet_config.asg_name)
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
        untracked = work_untracked(fleet_config)
        fleet = fleet_page_get(asg_name=fleet_config.asg_name, leases=not untracked)
        names = fleet_names()
        # An active scale-in pause (scaling_pause): one line above the chart.
        pause = pause_active(fleet_config.name)
        context = {
            **(extra_context or {}),
            "publication_chart": chart,
            "chart_window": window,
            "chart_window_error": window_error,
            "chart_windows": [
                (w, _query_with(request, WINDOW_PARAM, w.key), w == window) for w in CHART_WINDOWS
            ],
            "chart_fleet": fleet_config,
            "fleet_untracked": untracked,
            "chart_fleet_error": fleet_config_error,
            # Links only when there is a choice: one fleet's page stays as it was.
            "chart_fleets": [
                (n, _query_with(request, FLEET_PARAM, n), n == fleet_config.name) for n in names
            ]
            if len(names) > 1
            else [],
            "policy_line": policy_line,
            "forecast_note": ""
            if forecast.load
            else f"Forecast load not drawn: {forecast.reason}.",
            "pause_line": "" if pause is None else pause_line(pause),
            # The group's instances (a short AWS read, cached) with their videos; or why not.
            "fleet": fleet if isinstance(fleet, Fleet) else None,
            "fleet_error": fleet if isinstance(fleet, str) else "",
        }
        return super().changelist_view(request, extra_context=context)

    def get_list_display(
        self, request: HttpRequest
    ) -> list[str | Callable[[MetricPublication], str | bool]]:
        chosen = chart_fleet_parse(request.GET.get(FLEET_PARAM))[0]
        policy = installed_policy_get(asg_name=chosen.asg_name)
        columns: list[str | Callable[[MetricPublication], str | bool]] = list(self.list_display)
        if not isinstance(policy, PolicyOnGroup):
            return columns
        groups = {name: chart_fleet_parse(name)[0].asg_name for name in fleet_names()}

        @admin.display(description="policy aims for")
        def aims_for(obj: MetricPublication) -> str:
            # Each row by its own fleet's policy (a read cached a minute per group).
            own = policy if obj.fleet == chosen.name else None
            if own is None and obj.fleet in groups:
                found = installed_policy_get(asg_name=groups[obj.fleet])
                own = found if isinstance(found, PolicyOnGroup) else None
            if own is None or obj.value is None:
                return "-"
            return f"{own.aim(obj.value)} instances"

        columns.insert(columns.index("source") + 1, aims_for)
        return columns


if TYPE_CHECKING:
    _PauseAdmin = admin.ModelAdmin[ScalingPause]
else:
    _PauseAdmin = admin.ModelAdmin


@admin.register(ScalingPause)
class ScalingPauseAdmin(ReadOnlyAdmin, _PauseAdmin):
    """Scale-in pauses, who asked and why: written by ``manage.py scaling_pause`` only."""

    list_display = ("fleet", "started_at", "until", "reason", "by", "ended_at", "end_reason")
    list_filter = ("fleet", "end_reason")
    ordering = ("-started_at",)


def _query_with(request: HttpRequest, param: str, value: str) -> str:
    """This page's query string with ``param`` set: filters and sorting stay as they are."""
    query = request.GET.copy()
    query[param] = value
    return "?" + query.urlencode()
