"""What every scaling command shares: a bad argument is one line, never a usage block."""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser


class OneLineErrorCommand(BaseCommand):
    """argparse's usage block buries the sentence that matters: print that alone, exit 2."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str) -> NoReturn:
            if parser.called_from_command_line:
                parser.exit(2, f"CommandError: {message}.\n")
            raise CommandError(f"{message}.", returncode=2)

        parser.error = error  # type: ignore[method-assign]
        return parser
