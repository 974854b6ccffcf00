"""The one base class for errors a user can fix: a wrong id, a missing file, a bad field.

Library errors a user can act on derive from `UserError` (usually together with the built-in class
they always were, so `except ValueError` keeps working). The CLI prints such an error's message and
its hint in a line or two and exits 1 — never a traceback; anything else is a bug and keeps its
traceback.

    class ExportError(UserError, ValueError):
        hint = "see `tailorlm export --help` for the targets and their options"

    raise ExportError("unknown export target 'onnx'")
    raise ExportError("no model 'acme@v9'", hint="see `tailorlm models`")
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; `message` says what is wrong, `hint` what to do about it.

    A subclass may set a class-level `hint` used when none is given.
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = str(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return self.message


class NotFound(UserError, KeyError):
    """A reference (id, `name`, `name@version`, file) that matches nothing in the workspace.

    A KeyError as well, so look-ups that catch KeyError (a registry miss) keep working.
    """

    hint = "see what exists with `tailorlm runs` and `tailorlm models`"
