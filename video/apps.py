from django.apps import AppConfig


class VideoConfig(AppConfig):
    name = "video"
    verbose_name = "Videos"

    def ready(self) -> None:
        from video import checks  # noqa: F401  (registers the system checks)
