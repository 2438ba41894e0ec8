"""``scaling`` as a wheel in another project (tests/second_project/), nothing of this one.

The wheels are built here (packaging/build.py) and installed into a fresh virtual
environment. To spare the downloads, a ``.pth`` line appends this project's
site-packages to it: a path line in a .pth only adds the folder, so the editable
``academy`` install in there (a finder the folder's own .pth would start) stays
off, and ``video``, ``academy`` and ``devstack`` cannot be imported (asserted).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from devstack.localaws import LOCAL_CREDENTIALS, local_aws_bootstrap, local_client
from tests.support.importgraph import external_imports, project_files

ROOT = Path(__file__).resolve().parents[2]
SECOND_PROJECT = ROOT / "tests" / "second_project"
DEPS_SITE = Path(sysconfig.get_paths()["purelib"]).resolve()  # this venv's site-packages
REGION = "eu-west-1"  # lecturehall/settings.py: not the academy's region
PIP_OFFLINE = ("--no-deps", "--no-index")  # the wheels only: dependencies come from the .pth
NAMESPACE, METRIC = "LectureHall/Encoding", "EncodeBacklog"

# scaling's third-party imports -> the distribution its wheel must declare for them.
DECLARED_FOR = {
    "django": "django",
    "celery": "celery",
    "django_celery_beat": "django-celery-beat",
    "boto3": "boto3",
    "botocore": "boto3",  # boto3 brings it
    "redis": "redis",
    "matplotlib": "matplotlib",  # the `plot` extra: simulate_scaling --plot only
    "yaml": "pyyaml",  # the `yaml` extra: export_scaling_stack --yaml only
}
TYPE_ONLY = re.compile(r"^mypy_boto3_")  # under TYPE_CHECKING, from boto3-stubs


def _declared() -> set[str]:
    """The distributions packaging/scaling/pyproject.toml names (extras included)."""
    project = tomllib.loads((ROOT / "packaging" / "scaling" / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"]]
    for extra in project["project"].get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in requirements}


def _run(
    argv: list[str], *, cwd: Path, env: dict[str, str], ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, f"{argv[1:]} exit {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _wheels_build(out: Path) -> dict[str, Path]:
    built = _run(
        [sys.executable, str(ROOT / "packaging" / "build.py"), "--out", str(out)],
        cwd=ROOT,
        env=dict(os.environ),
    )
    paths = [Path(line) for line in built.stdout.split()]
    return {p.name.split("-")[0]: p for p in paths}


def _venv_make(where: Path) -> Path:
    """A fresh venv (no pip of its own), with this venv's site-packages appended."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=where,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    (Path(site) / "wheelwork_dependencies.pth").write_text(f"{DEPS_SITE}\n")
    return python


@contextlib.contextmanager
def _database() -> Iterator[str]:
    """A PostgreSQL database of this test's own when the suite runs on PostgreSQL, else SQLite."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        yield ""  # lecturehall/settings.py: an SQLite file under LECTUREHALL_VAR
        return
    import psycopg

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"lecturehall_{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    host, port = str(db.get("HOST") or "127.0.0.1"), int(db.get("PORT") or 5432)
    user, password = str(db.get("USER") or "postgres"), str(db.get("PASSWORD") or "")

    def server() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=host,
            port=port,
            user=user,
            password=password or None,
            dbname="postgres",
            autocommit=True,
        )

    with server() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        secret = f":{password}" if password else ""
        yield f"postgres://{user}{secret}@{host}:{port}/{name}"
    finally:
        with server() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_scaling_wheel_declares_every_library_scaling_imports() -> None:
    imported = {
        name
        for module, path in project_files().items()
        if module == "scaling" or module.startswith("scaling.")
        for name in external_imports(path, module)
    }
    third_party = {
        n
        for n in imported
        if n not in sys.stdlib_module_names and n != "scaling" and not TYPE_ONLY.match(n)
    }
    assert third_party <= set(DECLARED_FOR), f"undeclared: {third_party - set(DECLARED_FOR)}"
    assert {DECLARED_FOR[n] for n in third_party} <= _declared()


@pytest.mark.integration
def test_a_second_project_runs_scaling_from_its_wheel(moto_endpoint: str, tmp_path: Path) -> None:
    wheels = _wheels_build(tmp_path / "dist")
    python = _venv_make(tmp_path / "venv")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *PIP_OFFLINE]
        + [str(w) for w in wheels.values()],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    project = tmp_path / "lecturehall"
    shutil.copytree(SECOND_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))

    reset = f"{moto_endpoint}/moto-api/reset"  # the session's moto server, loopback
    urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=5).close()  # noqa: S310
    asg_name = f"lecturehall-encoders-{uuid.uuid4().hex[:8]}"
    local_aws_bootstrap(moto_endpoint, region=REGION, asg_name=asg_name, queue_name="encodes")

    with _database() as database_url:
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            **LOCAL_CREDENTIALS,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "LECTUREHALL_VAR": str(tmp_path / "var"),
            "LECTUREHALL_DATABASE_URL": database_url,
            "LECTUREHALL_ASG_NAME": asg_name,
        }

        def manage(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            return _run([str(python), "manage.py", *args], cwd=project, env=env, ok=ok)

        manage("migrate", "--verbosity", "0")
        manage("makemigrations", "--check", "--dry-run")  # the wheel's migrations are whole
        manage(
            "shell",
            "-c",
            "from lectures.models import Encode as E; S = E.Status; E.objects.bulk_create("
            "[E(lecture=f'l{i}', status=s) for i, s in enumerate("
            "[S.QUEUED] * 3 + [S.ENCODING] * 2 + [S.DONE] * 4 + [S.BROKEN])])",
        )

        published = json.loads(manage("publish_backlog", "--json").stdout)
        assert (published["published"], published["value"], published["source"]) == (True, 5, "db")
        assert (published["uploaded"], published["processing"]) == (3, 2)
        assert published["recovered"] is None  # no lease hooks: recovery does not run

        dry = manage("install_scaling_policy", "--dry-run")
        assert "Lifecycle hook not installed: drain is off" in dry.stdout + dry.stderr
        assert f'AutoScalingGroupName": "{asg_name}"' in dry.stdout
        status = manage("scaling_status")
        assert "scale-in protection and drain: off" in status.stdout
        assert "Latest published value 5" in status.stdout

        seen: dict[str, Any] = json.loads(
            _run([str(python), "admin_page.py"], cwd=project, env=env).stdout
        )

    # The page and the endpoint a host mounts; the beat entry migrate made.
    assert seen["admin_status"] == 200
    assert (seen["backlog_status"], seen["backlog"]["backlog_count"]) == (200, 5)
    assert seen["beat_tasks"] == ["scaling.tasks.publish_backlog_metric"]
    assert seen["celery_has_task"]

    # Nothing of this repository's source on the second project's sys.path.
    venv = (tmp_path / "venv").resolve()
    assert Path(seen["scaling_file"]).resolve().is_relative_to(venv)
    inside = [p for p in seen["sys_path"] if p and Path(p).resolve().is_relative_to(ROOT)]
    assert {str(Path(p).resolve()) for p in inside} == {str(DEPS_SITE)}
    assert not any("__editable__" in p for p in seen["sys_path"])
    assert seen["importable"] == {
        "video": False,
        "academy": False,
        "devstack": False,
        "tests": False,
    }

    # The datapoint in (moto's) CloudWatch, with the policy's dimensions.
    cloudwatch = local_client("cloudwatch", moto_endpoint, REGION)
    dimensions = [{"Name": "WorkerType", "Value": "Encoder"}]
    dimensions.append({"Name": "AutoScalingGroupName", "Value": asg_name})
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=METRIC)["Metrics"]
    assert {frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in listed} == {
        frozenset((d["Name"], d["Value"]) for d in dimensions)
    }
    now = datetime.now(UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=METRIC,
        Dimensions=dimensions,
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )["Datapoints"]
    assert [(p["Maximum"], p["SampleCount"]) for p in stats] == [(5.0, 1.0)]

    # The worker client: its own top-level name, no Django, nothing of the project.
    worker = _run(
        [
            str(python),
            "-c",
            "import json, sys, academy_worker.loop as loop; print(json.dumps({'file': "
            "loop.__file__, 'loaded': sorted({m.split('.')[0] for m in sys.modules})}))",
        ],
        cwd=tmp_path,
        env=env,
    )
    loaded = json.loads(worker.stdout)
    assert Path(loaded["file"]).resolve().is_relative_to(venv)
    assert {"django", "scaling", "video", "celery"} & set(loaded["loaded"]) == set()
