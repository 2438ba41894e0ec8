"""One line for an exception, wherever a failure is reported (audit rows, commands, pages)."""

from __future__ import annotations

from scaling.deadline import deadline_cause


def error_text(exc: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def error_one_line(exc: BaseException, *, limit: int = 500) -> str:
    """``Type: message`` on one line; a deadline wrapped by a library is unwrapped."""
    exc = deadline_cause(exc)
    return f"{type(exc).__name__}: {error_text(exc)}"[:limit]
