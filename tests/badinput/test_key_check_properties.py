"""Properties of the X-Internal-Key check (scaling.audit.internal_auth.internal_key_refusal).

Keys come from the setting as settings.py parses them (comma-separated for
rotation); a presented key arrives as a WSGI server hands it over: the
header's bytes decoded as latin-1. The rules: a configured key is accepted, any
other value is refused, and a server with no key refuses everyone.
"""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from academy.envparse import env_list_parse
from scaling.audit.internal_auth import MAX_KEY_LENGTH, KeyRefusal, internal_key_refusal

common = settings(deadline=None, max_examples=200)

# What a key in the environment can be: no comma (the separator), no surrounding
# space (stripped), no NUL, no lone surrogate, at most 512 UTF-8 bytes.
key_text = (
    st.text(
        st.characters(codec="utf-8", exclude_characters=",\x00"),
        min_size=1,
        max_size=80,
    )
    .map(str.strip)
    .filter(lambda k: bool(k) and len(k.encode("utf-8")) <= MAX_KEY_LENGTH)
)
key_lists = st.lists(key_text, min_size=1, max_size=5, unique=True)
presented_text = st.text(st.characters(codec="utf-8"), max_size=600)


def on_the_wire(key: str) -> str:
    """The header value a WSGI server passes on for a client that sent ``key`` in UTF-8."""
    return key.encode("utf-8").decode("latin-1")


def _header_bytes(presented: str) -> bytes:
    try:
        return presented.encode("latin-1")
    except UnicodeEncodeError:
        return presented.encode("utf-8")


@common
@given(keys=key_lists, index=st.integers(min_value=0, max_value=4))
@example(keys=["ключ-2024", "k-current"], index=0)
def test_any_configured_key_is_accepted(keys: list[str], index: int) -> None:
    chosen = keys[index % len(keys)]

    assert internal_key_refusal(presented=on_the_wire(chosen), keys=keys) is None


@common
@given(keys=key_lists, presented=presented_text)
@example(keys=["k-current"], presented="k-current ")
@example(keys=["k-current"], presented="K-CURRENT")
@example(keys=["k-current"], presented="k-curren")
@example(keys=["ключ"], presented="ключ")  # text, not the bytes a server hands over
def test_anything_not_equal_to_a_configured_key_is_refused(keys: list[str], presented: str) -> None:
    assume(_header_bytes(presented) not in {k.encode("utf-8") for k in keys})

    assert internal_key_refusal(presented=presented, keys=keys) is not None


@common
@given(
    keys=key_lists,
    index=st.integers(min_value=0, max_value=4),
    cut=st.integers(min_value=1, max_value=40),
    tail=st.text(st.characters(codec="utf-8", exclude_characters=","), min_size=1, max_size=5),
)
def test_near_misses_of_a_key_are_refused(keys: list[str], index: int, cut: int, tail: str) -> None:
    key = on_the_wire(keys[index % len(keys)])
    near = {key[:-cut], key + tail, tail + key, key.swapcase(), key[::-1]}

    for presented in near:
        if _header_bytes(presented) not in {k.encode("utf-8") for k in keys}:
            assert internal_key_refusal(presented=presented, keys=keys) is not None, presented


@common
@given(keys=key_lists, presented=st.one_of(st.none(), presented_text))
@example(keys=["k-current"], presented="k-cur")
def test_accepted_only_when_the_bytes_equal_a_key(keys: list[str], presented: str | None) -> None:
    accepted = internal_key_refusal(presented=presented, keys=keys) is None

    assert accepted == (
        presented is not None and _header_bytes(presented) in {k.encode("utf-8") for k in keys}
    )


@common
@given(presented=st.one_of(st.none(), presented_text))
def test_no_key_configured_refuses_everyone(presented: str | None) -> None:
    assert internal_key_refusal(presented=presented, keys=[]) is KeyRefusal.UNCONFIGURED


@common
@given(keys=key_lists, pads=st.lists(st.text(" \t", max_size=2), min_size=12, max_size=12))
def test_rotation_every_key_of_the_setting_is_accepted(keys: list[str], pads: list[str]) -> None:
    raw = ",".join(f"{pads[i]}{k}{pads[i + 1]}" for i, k in enumerate(keys))
    parsed = env_list_parse(raw)

    assert parsed == keys
    for key in keys:
        assert internal_key_refusal(presented=on_the_wire(key), keys=parsed) is None


@common
@given(keys=st.lists(key_text, min_size=2, max_size=5, unique=True))
def test_rotation_a_retired_key_is_refused(keys: list[str]) -> None:
    retired, *current = keys
    assume(all(retired.encode() != k.encode() for k in current))
    parsed = env_list_parse(",".join(current))

    assert internal_key_refusal(presented=on_the_wire(retired), keys=parsed) is KeyRefusal.MISMATCH


@common
@given(keys=key_lists, data=st.data())
def test_two_headers_joined_by_the_server_are_refused(keys: list[str], data: st.DataObject) -> None:
    first = data.draw(st.sampled_from(keys))
    second = data.draw(st.sampled_from(keys))
    joined = f"{on_the_wire(first)},{on_the_wire(second)}"

    assert internal_key_refusal(presented=joined, keys=keys) is KeyRefusal.MALFORMED


@common
@given(keys=key_lists, extra=st.integers(min_value=1, max_value=2000))
def test_longer_than_the_limit_is_refused_without_comparing(keys: list[str], extra: int) -> None:
    presented = "k" * (MAX_KEY_LENGTH + extra)

    assert internal_key_refusal(presented=presented, keys=keys) is KeyRefusal.MALFORMED


@common
@given(keys=key_lists)
def test_empty_or_missing_is_missing(keys: list[str]) -> None:
    assert internal_key_refusal(presented=None, keys=keys) is KeyRefusal.MISSING
    assert internal_key_refusal(presented="", keys=keys) is KeyRefusal.MISSING
