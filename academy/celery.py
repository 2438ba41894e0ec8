import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")

app = Celery("academy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def worker_argv(name: str) -> list[str]:
    """`python <these>` starts one worker as the local stack, tests and soak run it:
    one prefork child, and none of the cluster chatter a single worker has no use for."""
    return [
        "-m",
        "celery",
        "-A",
        "academy",
        "worker",
        "-l",
        "INFO",
        "--concurrency",
        "1",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def beat_argv() -> list[str]:
    """`python <these>` starts beat (its schedule lives in the database)."""
    return ["-m", "celery", "-A", "academy", "beat", "-l", "INFO", "--pidfile="]
