from django.contrib import admin

from .models import Encode


@admin.register(Encode)
class EncodeAdmin(admin.ModelAdmin):  # no django_stubs_ext here: not subscripted
    list_display = ("lecture", "status", "queued_at")
