from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # scaling's internal backlog endpoint: /api/v1/internal/video/backlog-count/
    path("api/v1/internal/", include("scaling.urls")),
]
