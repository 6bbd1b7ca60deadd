"""The private token file and CSRF tokens."""

from __future__ import annotations

import os
import stat

import pytest

from tahoe_governor.web.access_tokens import (
    CsrfTokens,
    load_or_create_token,
    new_token,
    tokens_equal,
)


def test_token_created_once_with_mode_0600(tmp_path):
    """The token is made on first use, kept, unreadable by others, 128 bits."""
    token = load_or_create_token(tmp_path)
    path = tmp_path / "private" / "governor.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) == 26
    assert load_or_create_token(tmp_path) == token
    assert new_token() != new_token()


def test_damaged_token_file_is_an_error_not_replaced(tmp_path):
    """A short token file is reported, and left for the owner to delete."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "governor.token").write_text("abc\n")
    with pytest.raises(ValueError, match="128 bits"):
        load_or_create_token(tmp_path)
    assert (tmp_path / "private" / "governor.token").read_text() == "abc\n"


def test_tokens_equal():
    """Constant-time comparison still tells equal from different."""
    assert tokens_equal("abc", "abc")
    assert not tokens_equal("abd", "abc")
    assert not tokens_equal("", "abc")


@pytest.mark.parametrize(
    ("issued_at", "checked_at", "mangle", "ok", "why"),
    [
        (1000.0, 1000.0, None, True, "fresh token"),
        (1000.0, 1000.0 + 23 * 3600, None, True, "still valid within a day"),
        (1000.0, 1000.0 + 25 * 3600, None, False, "expired after a day"),
        (1000.0, 1000.0, "mac", False, "forged MAC"),
        (1000.0, 1000.0, "time", False, "issue time changed"),
        (1000.0, 1000.0, "empty", False, "missing token"),
        (1000.0, 1000.0, "other-key", False, "issued for another private token"),
    ],
)
def test_csrf_tokens(issued_at, checked_at, mangle, ok, why):
    """Each row: issue, perhaps tamper, check at an instant."""
    csrf = CsrfTokens("a" * 26)
    token = csrf.issue(issued_at)
    if mangle == "mac":
        token = token[:-2] + ("aa" if not token.endswith("aa") else "bb")
    elif mangle == "time":
        token = str(int(issued_at) + 1) + token[token.index("."):]
    elif mangle == "empty":
        token = ""
    elif mangle == "other-key":
        token = CsrfTokens("b" * 26).issue(issued_at)
    assert csrf.check(token, checked_at) is ok, why
