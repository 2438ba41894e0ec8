from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ScalingConfig(AppConfig):
    name = "scaling"
    verbose_name = "Autoscaling metric"

    def ready(self) -> None:
        from scaling import checks  # noqa: F401  (registers the system checks)
        from scaling.publishing.schedule import schedule_ensure_on_migrate

        post_migrate.connect(schedule_ensure_on_migrate, sender=self)
