from django.contrib import admin

from scaling.models import MetricPublication


@admin.register(MetricPublication)
class MetricPublicationAdmin(admin.ModelAdmin[MetricPublication]):
    list_display = ("slot_start", "status", "value", "source", "duration_ms", "spooled")
    list_filter = ("source", "status", "spooled")
    date_hierarchy = "slot_start"
    search_fields = ("error",)
