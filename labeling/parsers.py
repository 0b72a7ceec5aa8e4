"""The API's JSON parser: DRF's, with a clear 400 for bodies no view could use."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .text_checks import unstorable


class JSONParser(parsers.JSONParser):
    """Refuses JSON nested deeper than Python can decode (DRF lets RecursionError through as a
    500) or than text_checks.MAX_DEPTH, and strings with lone surrogates, which no field can store
    or echo back. NUL characters are left to the fields (DRF's CharField refuses them by name)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        problem = unstorable(data, nul=False)
        if problem:
            path, reason = problem
            raise ParseError(f"JSON parse error - {path or 'the body'} {reason}.")
        return data
