from django.urls import URLPattern, path

from scaling.views import backlog_count_view

app_name = "scaling"

urlpatterns: list[URLPattern] = [
    path("video/backlog-count/", backlog_count_view, name="backlog-count"),
]
