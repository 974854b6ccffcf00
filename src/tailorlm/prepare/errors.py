"""The error of the `prepare` stage, shared by its modules."""

from __future__ import annotations

from tailorlm.errors import UserError


class PrepareError(UserError, ValueError):
    """Sources that can't become a dataset; the message names the sources or files. Nothing was written."""
