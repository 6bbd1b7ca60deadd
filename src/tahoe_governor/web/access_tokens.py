"""The secrets that guard the private page: its URL token and per-page CSRF tokens.

The private page lives at ``/governor/<token>/``. The token is 128 random bits
(base32, no padding), created once and kept in ``NODEDIR/private/governor.token``
with mode 0600. Every state-changing request is a POST carrying a CSRF token
issued with the page that holds the form: ``<issued>.<nonce>.<mac>`` where the
MAC is HMAC-SHA256 over the issue time and nonce, keyed with the private
token. CSRF tokens expire after :data:`CSRF_LIFETIME_SECONDS`; every
comparison is constant-time (:func:`hmac.compare_digest`). Neither kind of
token is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = Path("private") / "governor.token"
TOKEN_BITS = 128
CSRF_LIFETIME_SECONDS = 24 * 3600


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_token() -> str:
    """A fresh private-page token: 128 random bits, base32 (26 characters)."""
    return _b32(secrets.token_bytes(TOKEN_BITS // 8))


def load_or_create_token(nodedir: str | os.PathLike[str]) -> str:
    """The node's private-page token, created (mode 0600) if it does not exist.

    A token file that is empty or shorter than 128 bits is an error, not
    silently replaced: the owner may have bookmarked the old URL.
    """
    path = Path(nodedir) / TOKEN_FILE
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = new_token()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        return token
    if len(token) < 26 or not token.isalnum():
        raise ValueError(
            f"{path}: expected a token of at least 26 letters and digits (128 bits); "
            "delete the file to make a new one"
        )
    return token


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
