"""deploy/ssm against a real local AWS endpoint (moto's server): values round-trip, none printed."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.ssm import env_to_ssm, ssm_to_env
from deploy.ssm.envfile import EnvFileError, env_parse, env_render

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/academy/test"
SECRETS = {
    "SECRET_KEY": 's3cr3t-"quoted"-\\back\\-$HOME-`cmd`',
    "DATABASE_URL": "postgres://academy:p@ss#w0rd=x@db.internal:5432/academy",
    "INTERNAL_API_KEY": "k-ssm-old-2c7e,k-ssm-new-8f10",
    "UNICODE_TOKEN": "ключ-🔑-токен",
    "PADDED": "  spaces kept  ",
}
SECRET_KEY_QUOTED = r'"s3cr3t-\"quoted\"-\\back\\-\$HOME-\`cmd\`"'
ENV_FILE = f"""# academy production environment
export DEBUG=false
ALLOWED_HOSTS=api.academy.example

SECRET_KEY={SECRET_KEY_QUOTED}
DATABASE_URL={SECRETS["DATABASE_URL"]}
INTERNAL_API_KEY='{SECRETS["INTERNAL_API_KEY"]}'
UNICODE_TOKEN={SECRETS["UNICODE_TOKEN"]}
PADDED='{SECRETS["PADDED"]}'
SCALING_ASG_NAME=academy-video-worker-asg
"""
EXPECTED = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "api.academy.example",
    **SECRETS,
    "SCALING_ASG_NAME": "academy-video-worker-asg",
}


@pytest.fixture
def ssm(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_REGION", aws["region"])
    return boto3.client("ssm", region_name=aws["region"], endpoint_url=aws["endpoint"])


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "academy.env"
    path.write_text(ENV_FILE, encoding="utf-8")
    return path


def _assert_nothing_secret(*texts: str) -> None:
    everything = "\n".join(texts)
    for value in SECRETS.values():
        assert value not in everything
    for part in ("s3cr3t", "p@ss#w0rd", "k-ssm-old-2c7e", "k-ssm-new-8f10", "ключ"):
        assert part not in everything


def test_env_file_parses_as_systemd_would() -> None:
    assert env_parse(ENV_FILE) == EXPECTED


def test_upload_creates_securestrings_and_prints_no_value(
    ssm: Any, env_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    code = env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX])

    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    assert out.splitlines() == [
        f"Created {PREFIX}/{name} (SecureString, version 1)" for name in EXPECTED
    ] + [f"8 created, 0 updated, 0 unchanged, 0 deleted under {PREFIX}/"]
    stored = ssm.get_parameters_by_path(Path=PREFIX, WithDecryption=True)["Parameters"]
    assert {p["Name"]: (p["Type"], p["Value"]) for p in stored} == {
        f"{PREFIX}/{name}": ("SecureString", value) for name, value in EXPECTED.items()
    }
    _assert_nothing_secret(out, err, caplog.text)


def test_render_round_trips_every_value(
    ssm: Any, env_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX + "/"]) == 0
    output = tmp_path / "etc" / "academy.env"
    output.parent.mkdir()
    capsys.readouterr()

    code = ssm_to_env.main(["--prefix", PREFIX, "--output", str(output)])

    out, err = capsys.readouterr()
    assert code == 0
    assert (out, err) == (
        f"Wrote 8 variables to {output} (mode 0600): ALLOWED_HOSTS, DATABASE_URL, DEBUG, "
        "INTERNAL_API_KEY, PADDED, SCALING_ASG_NAME, SECRET_KEY, UNICODE_TOKEN\n",
        "",
    )
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert env_parse(output.read_text(encoding="utf-8")) == EXPECTED
    assert output.read_text(encoding="utf-8").startswith(f"# Rendered from SSM {PREFIX}/ by ")
    assert [p.name for p in output.parent.iterdir()] == ["academy.env"]  # no temp file left
    _assert_nothing_secret(out, err)


def test_rendered_file_reads_back_the_same_in_a_shell(tmp_path: Path) -> None:
    output = tmp_path / "academy.env"
    output.write_text(env_render(EXPECTED, header="test"), encoding="utf-8")

    shown = subprocess.run(
        ["sh", "-c", f'set -a; . "{output}"; printf %s "$SECRET_KEY|$PADDED|$DATABASE_URL"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )

    expected = f"{SECRETS['SECRET_KEY']}|{SECRETS['PADDED']}|{SECRETS['DATABASE_URL']}"
    assert shown.stdout == expected


def test_second_upload_changes_only_what_changed_and_prunes(
    ssm: Any, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX]) == 0
    edited = (
        env_file.read_text()
        .replace("DEBUG=false", "DEBUG=true")
        .replace("SCALING_ASG_NAME=academy-video-worker-asg\n", "")
    )
    env_file.write_text(edited)
    capsys.readouterr()

    dry = env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX, "--prune", "--dry-run"])
    dry_out = capsys.readouterr().out
    code = env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX, "--prune"])
    out = capsys.readouterr().out

    assert (dry, code) == (0, 0)
    assert f"Would update {PREFIX}/DEBUG (SecureString)" in dry_out.splitlines()
    assert f"Would delete {PREFIX}/SCALING_ASG_NAME" in dry_out.splitlines()
    assert f"Updated {PREFIX}/DEBUG (SecureString, version 2)" in out.splitlines()
    assert f"Unchanged {PREFIX}/SECRET_KEY" in out.splitlines()
    assert f"Deleted {PREFIX}/SCALING_ASG_NAME" in out.splitlines()
    assert out.splitlines()[-1] == f"0 created, 1 updated, 6 unchanged, 1 deleted under {PREFIX}/"
    names = {p["Name"] for p in ssm.get_parameters_by_path(Path=PREFIX)["Parameters"]}
    assert f"{PREFIX}/SCALING_ASG_NAME" not in names
    assert ssm.get_parameter(Name=f"{PREFIX}/DEBUG")["Parameter"]["Version"] == 2
    _assert_nothing_secret(dry_out, out)


def test_dry_run_changes_nothing(
    ssm: Any, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX, "--dry-run"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == f"Would create {PREFIX}/DEBUG (SecureString)"
    assert out.splitlines()[-1] == (
        f"Dry run: 8 created, 0 updated, 0 unchanged, 0 deleted under {PREFIX}/"
    )
    assert ssm.get_parameters_by_path(Path=PREFIX)["Parameters"] == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("A=1\nthis line has the secret hunter2 in it\n", "line 2: expected NAME=value"),
        ("A=1\n9BAD=hunter2\n", "line 2: expected NAME=value"),
        ("A=1\nA=hunter2\n", "line 2: A is set twice (first on line 1)"),
        ('A="hunter2\n', "line 1: a quote is opened and never closed"),
        ('A="hun"ter2"\n', "line 1: an unescaped double quote inside quotes"),
        ("# only a comment\n", "{file} sets no variables: nothing to upload"),
        (
            "A=hunter2\nB=\nC=''\n",
            "B, C are empty, which SSM cannot store: remove the line (unset means the same "
            "to the app)",
        ),
    ],
)
def test_bad_env_files_are_refused_without_echoing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.env"
    path.write_text(content)

    code = env_to_ssm.main(["--env-file", str(path), "--prefix", PREFIX])

    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", f"error: {message.format(file=path)}.\n")
    assert "hunter2" not in err


def test_render_refuses_an_empty_prefix_and_keeps_the_old_file(
    ssm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "academy.env"
    output.write_text("KEEP=me\n")

    code = ssm_to_env.main(["--prefix", "/academy/nothing-here", "--output", str(output)])

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: no parameters under /academy/nothing-here/: {output} left as it was.\n"
    )
    assert output.read_text() == "KEEP=me\n"


def test_render_refuses_a_value_an_env_file_cannot_hold(
    ssm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm.put_parameter(
        Name=f"{PREFIX}/PEM", Value="-----BEGIN-----\nhunter2\n-----END-----", Type="SecureString"
    )

    code = ssm_to_env.main(["--prefix", PREFIX, "--output", str(tmp_path / "x.env")])

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == "error: the value of PEM holds a line break, which an env file cannot.\n"
    assert not (tmp_path / "x.env").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prefix", "academy/prod"], "--prefix 'academy/prod' is not a parameter path"),
        (["--prefix", "/academy prod"], "--prefix '/academy prod' is not a parameter path"),
    ],
)
def test_bad_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = ssm_to_env.main([*argv, "--output", str(tmp_path / "x.env"), "--region", "eu-west-1"])

    assert code == 1
    assert capsys.readouterr().err == f"error: {message}: use e.g. /academy/production.\n"


def test_world_readable_mode_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        ssm_to_env.main(["--prefix", PREFIX, "--output", str(tmp_path / "x"), "--mode", "0644"])

    assert raised.value.code == 2
    assert "0644 lets every user read the secrets: use 0600 or 0640" in capsys.readouterr().err


def test_both_commands_as_processes_print_no_secret(
    ssm: Any, aws: dict[str, str], env_file: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": aws["endpoint"], "AWS_REGION": aws["region"]}
    output = tmp_path / "rendered.env"

    push = ["deploy.ssm.env_to_ssm", "--env-file", str(env_file), "--prefix", PREFIX]
    pull = ["deploy.ssm.ssm_to_env", "--prefix", PREFIX, "--output", str(output)]

    pushed = subprocess.run(
        [sys.executable, "-m", *push],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    pulled = subprocess.run(
        [sys.executable, "-m", *pull],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (pushed.returncode, pulled.returncode) == (0, 0), pushed.stderr + pulled.stderr
    assert env_parse(output.read_text(encoding="utf-8")) == EXPECTED
    _assert_nothing_secret(pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr)


def test_unreachable_endpoint_is_one_line(
    monkeypatch: pytest.MonkeyPatch, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from devstack.localaws import LOCAL_CREDENTIALS, port_free_get

    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port_free_get()}")
    monkeypatch.setattr(
        "deploy.ssm.envfile.ADMIN_CONFIG",
        __import__("botocore.config").config.Config(
            connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}
        ),
    )

    code = env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX, "--region", "x-1"])

    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err.startswith("error: cannot reach SSM: Could not connect to the endpoint URL")
    assert err.count("\n") == 1
    _assert_nothing_secret(err)


def test_missing_region(
    monkeypatch: pytest.MonkeyPatch, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)

    assert env_to_ssm.main(["--env-file", str(env_file), "--prefix", PREFIX]) == 1
    assert capsys.readouterr().err == "error: no AWS region: pass --region or set AWS_REGION.\n"


def test_env_render_rejects_bad_names() -> None:
    with pytest.raises(EnvFileError, match="'bad-name' is not a usable environment variable name"):
        env_render({"bad-name": "x"}, header="h")
