from django.apps import AppConfig


class LecturesConfig(AppConfig):
    name = "lectures"
    default_auto_field = "django.db.models.BigAutoField"
