"""Text no database column can hold, found anywhere in parsed JSON before it is stored.

A lone UTF-16 surrogate (JSON's "\\ud800") has no UTF-8 form: storing or rendering it fails. A NUL
character is refused by PostgreSQL's text and jsonb types. Input holding either is refused with
the place where it was found, instead of failing later on the way into the database or out of it.
"""

from __future__ import annotations

MAX_PATH = 80


def text_problem(text: str, *, nul: bool = True) -> str | None:
    """Why `text` cannot be stored, or None."""
    if nul and "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (not valid Unicode text)"
    return None


def unstorable(value, *, nul: bool = True) -> tuple[str, str] | None:
    """(path, reason) of the first string or key in `value` that cannot be stored, or None.

    The path names keys and list positions from the top ("metadata.tags[2]"); a key that cannot be
    stored is named by its parent. Iterative, so any nesting depth the JSON parser accepted works.
    """
    stack = [("", value)]
    while stack:
        path, node = stack.pop()
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
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(node))
    return None


def _short(path: str) -> str:
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 1] + "…"
