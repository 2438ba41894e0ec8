from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest, HttpResponse

from video.models import Video, VideoStatus


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin[Video]):
    list_display = ("title", "status", "status_changed_at", "created_at")
    list_filter = ("status",)
    search_fields = ("title",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "updated_at", "status_changed_at")
    change_list_template = "admin/video/video/change_list.html"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        counts = dict(
            Video.objects.order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        status_counts = [(label, counts.get(value, 0)) for value, label in VideoStatus.choices]
        context = {**(extra_context or {}), "status_counts": status_counts}
        return super().changelist_view(request, extra_context=context)
