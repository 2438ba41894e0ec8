from django.apps import AppConfig


class VideoConfig(AppConfig):
    name = "video"
    verbose_name = "Videos"
