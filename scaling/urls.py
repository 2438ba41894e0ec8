from django.urls import URLPattern

app_name = "scaling"

urlpatterns: list[URLPattern] = []
