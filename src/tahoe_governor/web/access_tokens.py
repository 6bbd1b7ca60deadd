"""The secrets that guard the private page: its URL token and per-page CSRF tokens.

The private page lives at ``/governor/<token>/``. The token is 128 random bits
(base32, no padding), created once and kept in ``NODEDIR/private/governor.token``
with mode 0600, written atomically (a crash never leaves a part of it). Every
state-changing request is a POST carrying a CSRF token issued with the page
that holds the form: ``<issued>.<nonce>.<mac>`` where the MAC is HMAC-SHA256
over the issue time and nonce, keyed with the private token. CSRF tokens
expire after :data:`CSRF_LIFETIME_SECONDS`; every comparison is constant-time
(:func:`hmac.compare_digest`). Neither kind of token is ever logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

from twisted.logger import Logger

log = Logger()

TOKEN_FILE = Path("private") / "governor.token"
TOKEN_BITS = 128
CSRF_LIFETIME_SECONDS = 24 * 3600


class TokenFileError(ValueError):
    """The token file cannot be used as it is; the message names it and what to do."""


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_token() -> str:
    """A fresh private-page token: 128 random bits, base32 (26 characters)."""
    return _b32(secrets.token_bytes(TOKEN_BITS // 8))


def _write_atomically(path: Path, token: str, replace: bool) -> None:
    """Write ``token`` to ``path`` (mode 0600) so that a crash or a full disk leaves the
    old file or the whole new one, never a part: a temporary file in the same
    directory, fsync, then a rename (``replace``) or a link that fails if the file
    appeared meanwhile (FileExistsError)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _tighten_mode(path: Path) -> None:
    """Make a token file readable by its owner only: fixed (and logged) when it is ours,
    refused when another user owns it (we cannot vouch for who else read it)."""
    found = path.stat()
    loose = stat.S_IMODE(found.st_mode) & 0o077
    if not loose:
        return
    if found.st_uid != os.getuid():
        raise TokenFileError(
            f"{path}: mode {stat.S_IMODE(found.st_mode):04o} lets other users read the private "
            f"page's token, and the file belongs to user id {found.st_uid}, not to this one "
            f"({os.getuid()}): expected a file of ours with mode 0600; delete it to make a "
            "new token (the private page's address changes)"
        )
    os.chmod(path, 0o600)
    log.warn(
        "{path}: mode was {mode:04o} (readable by other users); set to 0600. Anyone who "
        "read it can reach the private page: delete the file and restart to change the token.",
        path=str(path), mode=stat.S_IMODE(found.st_mode),
    )


def load_or_create_token(nodedir: str | os.PathLike[str]) -> str:
    """The node's private-page token, created (mode 0600, atomically) if it does not exist.

    An existing file with a mode readable by others is set to 0600 and logged when it
    is ours, refused otherwise. An empty file (left by a crash before writes were
    atomic) is replaced by a new token, logged. A token shorter than 128 bits or not
    letters and digits is a :class:`TokenFileError`, not silently replaced: the owner
    may have bookmarked the old URL.
    """
    path = Path(nodedir) / TOKEN_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        _tighten_mode(path)
        raw = path.read_bytes()
    except FileNotFoundError:
        token = new_token()
        try:
            _write_atomically(path, token, replace=False)
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_token(nodedir)
        return token
    text = raw.decode("ascii", "replace").strip()
    if not text:
        token = new_token()
        _write_atomically(path, token, replace=True)
        log.warn("{path} was empty; wrote a new private-page token", path=str(path))
        return token
    if len(text) < 26 or not (text.isascii() and text.isalnum()):
        raise TokenFileError(
            f"{path}: expected a token of at least 26 letters and digits (128 bits), "
            f"found {len(raw)} bytes that are not one; delete the file to make a new one "
            "(the private page's address changes)"
        )
    return text


def tokens_equal(given: str, expected: str) -> bool:
    """Compare two tokens in constant time (for equal lengths)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class CsrfTokens:
    """Issues and checks CSRF tokens bound to one private token.

    ``issue(now)`` and ``check(token, now)`` take the time in seconds (epoch);
    no clock is read here.
    """

    def __init__(self, private_token: str, lifetime_seconds: float = CSRF_LIFETIME_SECONDS):
        self._key = hashlib.sha256(b"tahoe-governor csrf:" + private_token.encode()).digest()
        self._lifetime = lifetime_seconds

    def _mac(self, issued: str, nonce: str) -> str:
        digest = hmac.new(self._key, f"{issued}.{nonce}".encode(), hashlib.sha256).digest()
        return _b32(digest[:20])

    def issue(self, now: float) -> str:
        """A new CSRF token for a page rendered at ``now``."""
        issued = str(int(now))
        nonce = _b32(secrets.token_bytes(10))
        return f"{issued}.{nonce}.{self._mac(issued, nonce)}"

    def check(self, token: str | None, now: float) -> bool:
        """True if ``token`` was issued by us and has not expired at ``now``."""
        if not token:
            return False
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        issued, nonce, mac = parts
        if not tokens_equal(mac, self._mac(issued, nonce)):
            return False
        age = now - int(issued)
        return -60 <= age <= self._lifetime
