"""The private token file and CSRF tokens."""

from __future__ import annotations

import os
import stat

import pytest
from twisted.logger import Logger, formatEvent

from tahoe_governor.web import access_tokens
from tahoe_governor.web.access_tokens import (
    CsrfTokens,
    TokenFileError,
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
    """A short token file is reported, naming the file and what to do, and left for
    the owner to delete."""
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "governor.token").write_text("abc\n")
    os.chmod(tmp_path / "private" / "governor.token", 0o600)
    with pytest.raises(TokenFileError, match="128 bits.*delete the file to make a new one"):
        load_or_create_token(tmp_path)
    assert (tmp_path / "private" / "governor.token").read_text() == "abc\n"


def test_a_loose_mode_on_our_token_file_is_fixed_and_logged(tmp_path, monkeypatch):
    """A group- or world-readable token file of ours is set to 0600, with a warning that
    says what happened and how to change the token."""
    events: list[dict] = []
    monkeypatch.setattr(access_tokens, "log", Logger(observer=events.append))
    token = load_or_create_token(tmp_path)
    path = tmp_path / "private" / "governor.token"
    os.chmod(path, 0o644)
    assert load_or_create_token(tmp_path) == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (event,) = events
    assert "mode was 0644 (readable by other users); set to 0600" in formatEvent(event)


def test_a_loose_token_file_of_another_user_is_refused(tmp_path, monkeypatch):
    """A readable token file that belongs to someone else is refused, naming the path,
    the mode and the owner, and left as it is."""
    load_or_create_token(tmp_path)
    path = tmp_path / "private" / "governor.token"
    os.chmod(path, 0o640)
    monkeypatch.setattr(access_tokens.os, "getuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(TokenFileError, match=rf"{path}: mode 0640 lets other users read"):
        load_or_create_token(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_an_empty_token_file_is_replaced_and_logged(tmp_path, monkeypatch):
    """An empty file (a crash before writes were atomic) no longer blocks every start."""
    events: list[dict] = []
    monkeypatch.setattr(access_tokens, "log", Logger(observer=events.append))
    (tmp_path / "private").mkdir()
    path = tmp_path / "private" / "governor.token"
    path.write_text("")
    os.chmod(path, 0o600)
    token = load_or_create_token(tmp_path)
    assert len(token) == 26
    assert path.read_text() == token + "\n"
    assert "was empty; wrote a new private-page token" in formatEvent(events[0])


def test_the_token_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A write that fails (a full disk) leaves no token file and no temporary file, so
    the next start makes one; the file appears by rename only after fsync."""
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(access_tokens.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        load_or_create_token(tmp_path)
    assert os.listdir(tmp_path / "private") == []
    monkeypatch.setattr(access_tokens.os, "fsync", real_fsync)
    assert len(load_or_create_token(tmp_path)) == 26
    assert os.listdir(tmp_path / "private") == ["governor.token"]


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
