"""One part of a status: what was read, or the one line that says why not.

Each part is read on its own and fails on its own: a database or AWS outage
turns that part into one sentence and leaves the others standing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from scaling.audit.aws_errors import error_sentence

T = TypeVar("T")
# A part's error shares a line with its label: long enough for an AWS message.
ERROR_LIMIT = 300
AWS_ERRORS = (BotoCoreError, ClientError, ResponseParserError)


@dataclass(frozen=True)
class Part(Generic[T]):
    """One part of the status: what was read, or the one line that says why not."""

    data: T | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        # Every reader returns a value (an empty list at least): None means it failed.
        return self.data is not None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def part_read(read: Callable[[], T], *, errors: tuple[type[BaseException], ...]) -> Part[T]:
    try:
        return Part(data=read())
    except errors as exc:
        # An AWS failure as what to change (aws_errors); anything else as ``Type: message``.
        return Part(error=error_sentence(exc, limit=ERROR_LIMIT))
