"""How the CLI prints: readable (rich) on a terminal, one JSON document per line otherwise.

JSON lines pipe into ``jq``; a reader that closes the pipe early (``crowd ... | head``) ends
the command quietly with status 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from functools import partial
from typing import Any

import grpc
import typer
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from crowd.client import violations
from crowd.definitions.errors import DefinitionError


class OutputMode(StrEnum):
    """``--output``: ``auto`` is ``pretty`` on a terminal and ``json`` otherwise."""

    AUTO = "auto"
    JSON = "json"
    PRETTY = "pretty"


class Output:
    """Writes results to stdout and problems to stderr in the chosen mode."""

    def __init__(self, mode: OutputMode = OutputMode.AUTO) -> None:
        pretty = mode is OutputMode.PRETTY or (mode is OutputMode.AUTO and sys.stdout.isatty())
        self.pretty = pretty
        self._console = Console(highlight=False, soft_wrap=True) if pretty else None
        self._errors = Console(stderr=True, highlight=False, soft_wrap=True) if pretty else None

    # --- results (stdout) -----------------------------------------------------------------------

    def result(self, item: Message | dict[str, Any], *, compact: bool = False) -> None:
        """One result: a proto message or a plain mapping; ``compact`` forces one JSON line."""
        document = (
            json_format.MessageToDict(item, preserving_proto_field_name=True)
            if isinstance(item, Message)
            else item
        )
        text = json.dumps(document, sort_keys=True, ensure_ascii=False)
        console = self._console
        if console is not None and not compact:
            self._write(lambda: console.print_json(text))
        else:
            self.line(text)

    def line(self, text: str) -> None:
        """A line of plain text on stdout."""
        self._write(lambda: print(text, flush=True))

    def text(self, text: Text) -> None:
        """Styled text on stdout (colours only on a terminal); plain text when not pretty."""
        console = self._console
        if console is None:
            self.line(text.plain)
        else:
            self._write(partial(console.print, text))

    def table(self, table: Table) -> None:
        """A rich table on stdout (pretty mode only)."""
        self.renderable(table)

    def renderable(self, thing: RenderableType) -> None:
        """Any rich renderable (tables, groups) on stdout (pretty mode only)."""
        console = self._console
        if console is not None:
            self._write(partial(console.print, thing))

    def _write(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly. Point stdout at /dev/null so
            # that the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None

    # --- problems (stderr) ----------------------------------------------------------------------

    def problem(self, text: str) -> None:
        """A line on stderr."""
        if self._errors is not None:
            self._errors.print(text, markup=False, style="red")
        else:
            print(text, file=sys.stderr, flush=True)

    def definition_errors(
        self, errors: Iterable[DefinitionError], where: Callable[[str], str] | None = None
    ) -> None:
        """Each problem of a document once, ``path: message``, on stdout (the report);
        ``where(path)`` puts a position such as ``file.yaml:12:7: `` in front."""
        for error in errors:
            prefix = where(error.path) if where is not None and error.path else ""
            console = self._console
            if console is None:
                self.line(prefix + str(error))
                continue
            text = Text()
            if prefix:
                text.append(prefix, style="dim")
            if error.path:
                text.append(error.path, style="bold")
                text.append(": ")
            text.append(error.message)
            self._write(partial(console.print, text))

    def rpc_error(self, error: grpc.aio.AioRpcError) -> None:
        """A failed call: code, message and field violations; never a traceback."""
        self.problem(f"error: {error.code().name}: {error.details()}")
        for field, description in violations(error):
            self.problem(f"  {field}: {description}")
