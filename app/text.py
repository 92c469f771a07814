"""What counts as text: one rule for every string a client sends, whoever sends it.

A lone surrogate cannot be stored (BSON is UTF-8), control characters have no
place in a name or a search, and bidirectional overrides make a title read
differently from what it holds (a "Trojan Source" trick). Tabs, newlines and
every script's letters are text. Each field's own length limit is its
domain's; MAX_TEXT bounds what any string may cost us before that.
"""

from __future__ import annotations

import re

MAX_TEXT = 10_000
# C0 controls but tab, newline and carriage return; DEL and C1 controls; bidi embeddings,
# overrides and isolates; surrogates (a str holds them only alone: they are no characters).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` is not acceptable text, or None."""
    if len(value) > MAX_TEXT:
        return f"is longer than {MAX_TEXT} characters"
    bad = _NOT_TEXT.search(value)
    if bad is None:
        return None
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        kind = "a lone surrogate (not a character)"
    elif "\u202a" <= char <= "\u2069":
        kind = "a bidirectional control character"
    else:
        kind = "a control character"
    return f"holds {kind} (U+{ord(char):04X}) at position {bad.start()}"


def first_bad_text(value: object, path: str = "") -> tuple[str, str] | None:
    """The first string in a JSON-like value (dicts, lists, strings) that is not acceptable
    text: its path (`input.name`, `items.0`) and why; None if all are."""
    if isinstance(value, str):
        problem = text_problem(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_bad_text(key, path) if isinstance(key, str) else None
            found = found or first_bad_text(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_bad_text(item, f"{path}.{index}")
            if found:
                return found
    return None
