"""Names that come from outside (server nicknames, names in requests) made safe to show.

A storage server chooses its own nickname, and a request may carry any job
name or selector: shown raw, an escape sequence would reach the owner's
terminal, a newline would forge a log line and a bidi override would reorder
what the page shows. :func:`display_name` is the one escaping every display
uses (the command, the pages, ``/metrics`` label values, the access log and
control messages): every control, format (bidi overrides included), surrogate,
private-use, unassigned or line/paragraph-separator character is written as a
Python escape (``\\x1b``, ``\\u202e``, ``\\U000e0001``); other text is unchanged.
Bytes that are not UTF-8 show as ``\\xNN``. :func:`clean_text` makes any value
a well-formed string for a snapshot (JSON and UTF-8 safe) without escaping
what a JSON reader handles itself.
"""

from __future__ import annotations

import unicodedata

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean_text(value: object) -> str:
    """``value`` (bytes, str or None) as a string that encodes to UTF-8: undecodable
    bytes and lone surrogates become ``\\xNN`` / ``\\udcNN`` escapes."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def display_name(value: object) -> str:
    """``value`` as :func:`clean_text`, with every character that could act on a terminal,
    a log line or a page's layout escaped (see the module doc)."""
    return "".join(
        _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in clean_text(value)
    )
