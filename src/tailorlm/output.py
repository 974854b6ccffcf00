"""How the CLI prints, so that a person can read it in a terminal and in a log.

* Tables never elide: on a terminal a long id or path folds onto the next line of its cell; in a
  pipe or a file the table is printed at its natural width, so ids stay whole and greppable.
* Lines are not re-wrapped: a long path or a command to copy stays on one line.
* `--json` output is plain JSON on stdout (no colours, no wrapping), for scripts.
* Errors a user can fix (`tailorlm.errors.UserError`) are one `error:` line and a `hint:` line on
  stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# soft_wrap: a line (a path, a command to copy) is never broken by us; the terminal wraps it.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], **options: Any) -> Table:
    """A rich table whose cells fold (wrap mid-word if they must) instead of ending in `…`."""
    built = Table(**{"box": None, "padding": (0, 2), **options})
    for header in headers:
        built.add_column(header, overflow="fold", no_wrap=False)
    for row in rows:
        built.add_row(*("" if cell is None else str(cell) for cell in row))
    return built


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, to: Console | None = None, **options: Any
) -> None:
    """Print a table: folded to the terminal's width, or at full width when not on a terminal."""
    show(table(headers, rows, **options), to=to)


def show(renderable: Any, *, to: Console | None = None) -> None:
    """Print a table (or any renderable) without cutting it: full width when not on a terminal."""
    target = to or console
    if target.is_terminal:
        target.print(renderable, soft_wrap=False)  # wrapped (folded) to the terminal's width
    else:
        natural = target.measure(renderable, options=target.options.update_width(1_000_000)).maximum
        Console(file=target.file, width=max(target.width, natural), highlight=False).print(renderable, crop=False)


def print_json(data: Any) -> None:
    """Plain JSON on stdout: indented, UTF-8, no markup, for `--json`."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_error(message: str, hint: str | None = None) -> None:
    """`error: …` and, when there is one, `hint: …` on stderr."""
    err.print(f"[bold red]error:[/] {_escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(f"[yellow]hint:[/] {_escape(hint)}", highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
