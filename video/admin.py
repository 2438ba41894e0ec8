from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.db.models.functions import Now
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from video.burst import BURST_MAX, BURST_MIN, TITLE_PREFIX_MAX, video_burst_upload
from video.models import Video, VideoRecovery, VideoStatus
from video.selectors import lease_expired_q
from video.services import video_upload


class LeaseFilter(admin.SimpleListFilter):
    """PROCESSING videos whose lease ran out (recovery will take them) or still holds."""

    title = "lease"
    parameter_name = "lease"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("expired", "Lease expired"), ("live", "Lease live")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        processing = queryset.filter(status=VideoStatus.PROCESSING)
        if self.value() == "expired":
            return processing.filter(lease_expired_q())
        if self.value() == "live":
            return processing.filter(lease_expires_at__gte=Now())
        return queryset


class BurstForm(forms.Form):
    count = forms.IntegerField(
        min_value=BURST_MIN,
        max_value=BURST_MAX,
        initial=30,
        help_text=f"How many videos to upload at once ({BURST_MIN} to {BURST_MAX}).",
    )
    title_prefix = forms.CharField(
        required=False,
        max_length=TITLE_PREFIX_MAX,
        help_text='Titles are "<prefix> <n>/<count>"; empty: "Burst <date and time>".',
    )


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin[Video]):
    list_display = (
        "title",
        "status",
        "attempts",
        "lease_instance_id",
        "lease_remaining",
        "status_changed_at",
        "created_at",
    )
    list_filter = ("status", LeaseFilter)
    search_fields = ("title",)
    date_hierarchy = "created_at"
    # Status and lease change through video.services only (the worker API, recovery).
    readonly_fields = (
        "status",
        "created_at",
        "updated_at",
        "status_changed_at",
        "processing_started_at",
        "lease_expires_at",
        "lease_instance_id",
        "lease_worker_id",
        "attempts",
        "last_error",
    )
    exclude = ("lease_token",)
    change_list_template = "admin/video/video/change_list.html"

    @admin.display(description="lease left", ordering="lease_expires_at")
    def lease_remaining(self, video: Video) -> str:
        if video.status != VideoStatus.PROCESSING:
            return "-"
        if video.lease_expires_at is None:
            return "no lease"
        seconds = (video.lease_expires_at - timezone.now()).total_seconds()
        if seconds < 0:
            return f"expired {-seconds:.0f} s ago"
        return f"{seconds:.0f} s"

    def save_model(
        self, request: HttpRequest, obj: Video, form: ModelForm[Video], change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new video is an upload: UPLOADED, and its job message after the commit.
        created = video_upload(title=obj.title)
        obj.pk = created.pk
        obj.refresh_from_db()

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

    def get_urls(self) -> list[URLPattern]:
        burst = path(
            "upload-burst/",
            self.admin_site.admin_view(self.upload_burst_view),
            name="video_video_upload_burst",
        )
        return [burst, *super().get_urls()]

    def upload_burst_view(self, request: HttpRequest) -> HttpResponse:
        """Many uploads in one step (what `make burst` does), for staff who may add videos.

        admin_view has already required a staff login and CSRF on POST.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BurstForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            burst = video_burst_upload(
                count=form.cleaned_data["count"], title_prefix=form.cleaned_data["title_prefix"]
            )
            self.message_user(
                request,
                f"Uploaded {burst.count} videos, ids {burst.first_id} to {burst.last_id} "
                f'("{burst.title_prefix} 1/{burst.count}" ...).',
                messages.SUCCESS,
            )
            return redirect("admin:video_video_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload a burst",
            "form": form,
        }
        return TemplateResponse(request, "admin/video/video/upload_burst.html", context)


@admin.register(VideoRecovery)
class VideoRecoveryAdmin(admin.ModelAdmin[VideoRecovery]):
    """Read only: what recovery did, written by video.services alone."""

    list_display = ("recovered_at", "video", "status", "attempts", "instance_id", "worker_id")
    list_filter = ("status",)
    list_select_related = ("video",)
    search_fields = ("instance_id", "video__title")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
