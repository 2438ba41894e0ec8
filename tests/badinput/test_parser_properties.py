"""Properties of the settings parsers: for any text, a typed value or one sentence, never a crash.

``academy.envparse`` (what settings.py does with each raw environment value)
and ``scaling.conf.parse_int`` (how the scaling app reads its numbers).
"""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import example, given, settings
from hypothesis import strategies as st

from academy import envparse
from scaling.conf import parse_int

# No deadline: other suites may share this machine's two cores.
common = settings(deadline=None, max_examples=150)

# Anything an environment variable can hold (no NUL, no lone surrogates).
env_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
spaces = st.text(" \t", max_size=3)
NAME = "SOME_SETTING"


def _refusal(call: object, *args: object, **kwargs: object) -> str | None:
    try:
        call(*args, **kwargs)  # type: ignore[operator]
    except ImproperlyConfigured as exc:
        return str(exc)
    return None


# --- booleans ---------------------------------------------------------------------


@common
@given(word=st.sampled_from(sorted(envparse.TRUE_WORDS | envparse.FALSE_WORDS)), data=st.data())
def test_bool_words_in_any_case_and_padding(word: str, data: st.DataObject) -> None:
    cased = "".join(c.upper() if data.draw(st.booleans(), label=f"upper {c}") else c for c in word)
    raw = data.draw(spaces) + cased + data.draw(spaces)

    assert envparse.env_bool_parse(NAME, raw, default=False) is (word in envparse.TRUE_WORDS)


@common
@given(raw=env_text)
@example(raw="y")
@example(raw="truee")
@example(raw="tru\ne")
def test_bool_anything_else_is_one_sentence(raw: str) -> None:
    if raw.strip().lower() in envparse.TRUE_WORDS | envparse.FALSE_WORDS:
        return
    message = _refusal(envparse.env_bool_parse, NAME, raw, default=True)

    assert message == f"{NAME}={raw!r} is not a boolean: set it to true or false."
    assert "\n" not in message


@common
@given(default=st.booleans())
def test_bool_unset_is_the_default(default: bool) -> None:
    assert envparse.env_bool_parse(NAME, None, default=default) is default


# --- whole numbers ----------------------------------------------------------------


@common
@given(
    value=st.integers(min_value=-(10**30), max_value=10**30), pad=spaces, minimum=st.integers(-5, 5)
)
def test_int_round_trips_or_is_below_minimum(value: int, pad: str, minimum: int) -> None:
    raw = pad + str(value) + pad
    if value >= minimum:
        assert envparse.env_int_parse(NAME, raw, default=7, minimum=minimum) == value
    else:
        assert _refusal(envparse.env_int_parse, NAME, raw, default=7, minimum=minimum) == (
            f"{NAME}={raw!r} is below {minimum}: set it to a whole number, {minimum} or more."
        )


@common
@given(raw=env_text)
@example(raw="3s")
@example(raw="1.5")
@example(raw="1e6")
@example(raw="9" * 5000)  # past Python's int() digit limit: still a sentence
def test_int_any_text_is_a_number_the_default_or_one_sentence(raw: str) -> None:
    try:
        value = envparse.env_int_parse(NAME, raw, default=7, minimum=0)
    except ImproperlyConfigured as exc:
        message = str(exc)
        assert "\n" not in message
        assert message in (
            f"{NAME}={raw!r} is not a whole number.",
            f"{NAME}={raw!r} is below 0: set it to a whole number, 0 or more.",
        )
        return
    if raw.strip():
        assert value == int(raw.strip())
    else:
        assert value == 7


# --- lists ------------------------------------------------------------------------

item = env_text.map(lambda s: s.replace(",", "").strip()).filter(bool)


@common
@given(items=st.lists(item, max_size=6), pads=st.lists(spaces, min_size=14, max_size=14))
def test_list_joined_with_commas_and_padding_parses_back(items: list[str], pads: list[str]) -> None:
    raw = ",".join(f"{pads[i]}{x}{pads[i + 1]}" for i, x in enumerate(items)) + ", ,"

    assert envparse.env_list_parse(raw) == items


@common
@given(raw=st.one_of(st.none(), env_text))
def test_list_items_are_stripped_non_empty_and_comma_free(raw: str | None) -> None:
    parsed = envparse.env_list_parse(raw)

    assert all(x and x == x.strip() and "," not in x for x in parsed)
    assert envparse.env_list_parse(",".join(parsed)) == parsed


# --- scaling.conf.parse_int -------------------------------------------------------


@common
@given(value=st.integers(min_value=-(10**9) + 1, max_value=10**9 - 1), pad=spaces)
def test_parse_int_reads_up_to_nine_digits(value: int, pad: str) -> None:
    assert parse_int(f"{pad}{value}{pad}") == value
    assert parse_int(f"+{abs(value)}") == abs(value)
    assert parse_int(value) == value


@common
@given(raw=env_text)
@example(raw="1234567890")
@example(raw="6 0")
@example(raw="60s")
@example(raw="٦٠")  # Arabic-Indic digits: re's \d and int() agree on them
def test_parse_int_is_none_or_the_number_never_an_error(raw: str) -> None:
    value = parse_int(raw)

    if value is not None:
        assert value == int(raw)
        assert abs(value) < 10**9
    else:
        assert not re.fullmatch(r"\s*[+-]?\d{1,9}\s*", raw)


@pytest.mark.parametrize("raw", [True, False, None, 1.5, b"60", [60], {"60": 60}])
def test_parse_int_refuses_what_is_not_text_or_int(raw: object) -> None:
    assert parse_int(raw) is None


# --- the other refusals: one line, and no secret in it -----------------------------


@common
@given(raw=env_text)
@example(raw="verbose")
@example(raw="warn")
def test_log_level_is_a_logging_name_or_one_sentence(raw: str) -> None:
    message = _refusal(envparse.log_level_parse, raw)
    if message is None:
        assert envparse.log_level_parse(raw) in envparse.LOG_LEVELS
    else:
        assert message == (
            f"LOG_LEVEL={raw!r} is not a log level: set it to DEBUG, INFO, WARNING, ERROR "
            "or CRITICAL."
        )


@common
@given(raw=env_text)
@example(raw="ap-northeast-2")
@example(raw="ap northeast 2")
def test_region_is_botocores_shape_or_one_sentence(raw: str) -> None:
    message = _refusal(envparse.aws_region_parse, "AWS_REGION", raw)
    if message is None:
        assert envparse.REGION_RE.match(raw.strip())
    else:
        assert message.startswith(f"AWS_REGION={raw!r} is not an AWS region name")
        assert "\n" not in message


@common
@given(raw=env_text)
@example(raw="http://127.0.0.1:5000")
@example(raw="http://[::1")
@example(raw="http://127.0.0.1:99999")
def test_endpoint_is_http_with_a_host_or_one_sentence(raw: str) -> None:
    message = _refusal(envparse.aws_endpoint_parse, raw)
    if message is None:
        url = envparse.aws_endpoint_parse(raw)
        assert url is None or url.startswith(("http://", "https://"))
    else:
        assert message.startswith(f"AWS_ENDPOINT_URL={raw!r} is not an http(s) URL")
        assert "\n" not in message


password = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=8, max_size=30)


@common
@given(scheme=st.from_regex(r"[a-z][a-z0-9+]{0,12}", fullmatch=True), secret=password)
@example(scheme="redsi", secret="s3cret-pw")
def test_broker_url_message_never_repeats_the_password(scheme: str, secret: str) -> None:
    raw = f"{scheme}://user:pw-{secret}@127.0.0.1:6379/0"
    transports = frozenset({"redis", "rediss", "filesystem"})
    message = _refusal(envparse.broker_url_parse, raw, transports=transports)

    if scheme.split("+", 1)[0] in transports:
        assert message is None
    else:
        assert message is not None
        assert f"pw-{secret}" not in message
        assert "\n" not in message
