"""JSON no database column can hold, or no page can show, found before it is stored.

A lone UTF-16 surrogate (JSON's "\\ud800") has no UTF-8 form: storing or rendering it fails. A NUL
character is refused by PostgreSQL's text and jsonb types. JSON nested hundreds of levels deep is
stored, but decoding it again inside a page's rendering runs out of stack. Input holding any of
these is refused with the place where it was found, instead of failing later on its way out.
"""

from __future__ import annotations

MAX_PATH = 80
MAX_DEPTH = 32  # levels of nesting; metadata and settings need a handful


def text_problem(text: str, *, nul: bool = True) -> str | None:
    """Why `text` cannot be stored, or None."""
    if nul and "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (not valid Unicode text)"
    return None


def unstorable(value, *, nul: bool = True, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, reason) of the first string or key in `value` that cannot be stored, or of a value
    nested deeper than `max_depth`; None when all is well.

    The path names keys and list positions from the top ("metadata.tags[2]"); a key that cannot be
    stored is named by its parent. Iterative, so any nesting depth the JSON parser accepted works.
    """
    stack = [("", value, 0)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, (dict, list)) and depth >= max_depth:
            return _short(path) or "the value", f"is nested deeper than {max_depth} levels"
        if isinstance(node, str):
            reason = text_problem(node, nul=nul)
            if reason:
                return _short(path), reason
        elif isinstance(node, dict):
            for key, child in node.items():
                key = str(key)
                reason = text_problem(key, nul=nul)
                if reason:
                    return _short(path) or "a key", f"has a key that {reason}"
                stack.append((f"{path}.{key}" if path else key, child, depth + 1))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(node))
    return None


# A cell starting with one of these is run as a formula by spreadsheets (CSV injection); the
# TREC formats split on whitespace, so an id holding any would shift the columns.
FORMULA_STARTS = ("=", "+", "-", "@")


def external_id_problem(value: str) -> str | None:
    """Why `value` cannot be a query or item id (it must survive qrels, run and CSV), or None."""
    # The common case at C speed: printable ASCII holds no whitespace but the space.
    if value.isascii() and value.isprintable() and " " not in value:
        if value.startswith(FORMULA_STARTS):
            return f"must not start with {value[0]!r} (spreadsheets run such cells as formulas)"
        return None
    for position, char in enumerate(value, start=1):
        if char.isspace():
            return f"must not contain whitespace (character {position} is {char!r})"
        if not char.isprintable():
            return f"must hold printable characters only (character {position} is {char!r})"
    if value.startswith(FORMULA_STARTS):
        return f"must not start with {value[0]!r} (spreadsheets run such cells as formulas)"
    return None


def validate_external_id(value: str) -> None:
    """Model field validator for Query/Item.external_id (the admin's forms)."""
    from django.core.exceptions import ValidationError

    problem = external_id_problem(value)
    if problem:
        raise ValidationError(f"The id {problem}.", code="unsafe_id")


def csv_safe(value):
    """A CSV cell that no spreadsheet runs as a formula: a text cell starting with =, +, -, @,
    a tab or a carriage return gets a leading apostrophe (OWASP's advice); other values pass."""
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, "\t", "\r")):
        return "'" + value
    return value


def _short(path: str) -> str:
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 1] + "…"


def validate_storable_json(value) -> None:
    """Model field validator (the admin's JSON fields): refuses what `unstorable` finds."""
    from django.core.exceptions import ValidationError

    problem = unstorable(value)
    if problem:
        path, reason = problem
        raise ValidationError(f"{path} {reason}.", code="unstorable")
