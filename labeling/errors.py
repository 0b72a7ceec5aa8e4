"""Typed errors raised by services; web/api_errors.py turns them into one response shape."""

from __future__ import annotations

from typing import Any


class PagewiseError(Exception):
    """A rule of the domain was broken by the caller's input; safe to show to the user."""

    status_code = 400

    def __init__(self, message: str, *, fields: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(PagewiseError):
    status_code = 404


class PermissionDenied(PagewiseError):
    status_code = 403


class Conflict(PagewiseError):
    """The request is well formed but the state forbids it (e.g. the task is leased to someone else)."""

    status_code = 409


class ImportFailed(PagewiseError):
    """An import was refused whole; `problems` lists each bad line, field and reason."""

    def __init__(self, problems: list, *, total: int) -> None:
        shown = len(problems)
        more = f" (showing the first {shown})" if total > shown else ""
        super().__init__(
            f"Import refused: {total} problem{'s' if total != 1 else ''} found{more}; nothing was stored.",
            fields={"problems": [p.as_dict() for p in problems], "total": total},
        )
        self.problems = problems
        self.total = total


class ImportCancelled(PagewiseError):
    """A lead cancelled a running import; nothing of it was stored."""

    def __init__(self) -> None:
        super().__init__("The import was cancelled; nothing was stored.")
