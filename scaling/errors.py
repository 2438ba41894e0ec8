"""One line for an exception, wherever a failure is reported (audit rows, commands, pages)."""

from __future__ import annotations

from scaling.deadline import deadline_cause


def error_text(exc: BaseException, *, first_line: bool = False) -> str:
    """The exception's message on one line (its type name when it has none).

    ``first_line`` keeps only the message's first line: a database driver puts
    its advice ("Is the server running?") on the lines after the cause.
    """
    text = str(exc).strip()
    if first_line and text:
        text = text.splitlines()[0]
    return " ".join(text.split()) or type(exc).__name__


def error_one_line(exc: BaseException, *, limit: int = 500, first_line: bool = False) -> str:
    """``Type: message`` on one line; a deadline wrapped by a library is unwrapped."""
    exc = deadline_cause(exc)
    return f"{type(exc).__name__}: {error_text(exc, first_line=first_line)}"[:limit]
