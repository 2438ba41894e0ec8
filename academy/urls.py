from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/internal/", include("scaling.urls")),
    path("api/v1/internal/", include("video.urls")),  # the worker API: claim, renew, ...
]
