"""Keeping the private page's token out of the web server's access log.

Tahoe's ``TahoeLAFSSite`` logs every request through
``allmydata.webish._logFormatter``, which hides the caps in ``/uri/``,
``/file/`` and ``/named/`` paths but would write ``/governor/<token>/``
in full. :func:`censoring_log_formatter` wraps any Twisted access-log
formatter (Tahoe's, or Twisted's ``combinedLogFormatter``) so that it sees
``/governor/[CENSORED]/...`` instead, in the request line and in a
``Referer``; :func:`install_access_log_censoring` puts the wrapper on a
running site.

Twisted decodes each path segment (``%67overnor`` is ``governor``) before
looking up resources, so the censoring decides on the decoded segments too.
Given the token itself, the wrapper also replaces it wherever it appears in the
request line and the ``Referer`` (whatever the path's shape: ``/governor//TOKEN/``,
an absolute-form ``http://host/governor/TOKEN/``, a ``..`` path), in any mix of
plain and %-encoded characters (encoded once or more, any case).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from twisted.web.http import HTTPFactory

CENSORED = b"[CENSORED]"

LogFormatter = Callable[[str, Any], str]
"""Twisted's access-log formatter type: ``(timestamp, request) -> line``."""


def censor_governor_path(path: bytes) -> bytes:
    """``/governor/<token>/pause`` -> ``/governor/[CENSORED]/pause``; other paths unchanged.

    ``path`` may carry a query (``?t=json``), kept as it is.
    """
    path_part, sep, query = path.partition(b"?")
    if not path_part.startswith(b"/"):
        return path
    segments = path_part[1:].split(b"/")
    # Tahoe's root serves itself for an empty segment, so //governor/<token> reaches
    # the private page too: censor after the first "governor" segment anywhere.
    for index, segment in enumerate(segments[:-1]):
        if unquote_to_bytes(segment) == b"governor" and segments[index + 1]:
            segments[index + 1] = CENSORED
            return b"/" + b"/".join(segments) + sep + query
    return path


def token_pattern(token: str) -> re.Pattern[bytes]:
    """Matches ``token`` with any of its characters %-encoded (once or more: ``%2571``),
    in any case."""
    def one(char: str) -> bytes:
        code = f"{ord(char):02x}".encode("ascii")
        return b"(?:" + re.escape(char.encode("ascii")) + b"|%(?:25)*" + code + b")"

    return re.compile(b"".join(one(c) for c in token), re.IGNORECASE)


def censor_token(data: bytes, token: re.Pattern[bytes] | None) -> bytes:
    """``data`` with every match of the ``token`` pattern replaced by ``[CENSORED]``."""
    return data if token is None else token.sub(CENSORED, data)


def _censor_url(url: bytes, token: re.Pattern[bytes] | None) -> bytes:
    parts = urlsplit(url)
    censored = urlunsplit(parts._replace(path=censor_governor_path(parts.path)))
    return censor_token(censored, token)


class _CensoredRequest:
    """A view of a request for a log formatter: the same, with the token censored."""

    def __init__(self, request: Any, token: re.Pattern[bytes] | None) -> None:
        self._request = request
        self._token = token
        self.uri = censor_token(censor_governor_path(request.uri), token)
        self.path = censor_token(
            censor_governor_path(getattr(request, "path", request.uri)), token)

    def getHeader(self, name: bytes | str) -> bytes | None:
        value: bytes | None = self._request.getHeader(name)
        key = name.lower() if isinstance(name, bytes) else name.lower().encode("ascii")
        if value is not None and key in (b"referer", b"referrer"):
            return _censor_url(value, self._token)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def censoring_log_formatter(inner: LogFormatter, token: str | None = None) -> LogFormatter:
    """``inner`` with ``/governor/<token>`` censored in the request it formats, and
    ``token`` (when given) wherever it appears."""
    if getattr(inner, "censors_governor_token", False):
        return inner
    pattern = token_pattern(token) if token else None

    def format_line(timestamp: str, request: Any) -> str:
        return inner(timestamp, _CensoredRequest(request, pattern))

    format_line.censors_governor_token = True  # type: ignore[attr-defined]
    return format_line


def install_access_log_censoring(site: HTTPFactory, token: str | None = None) -> None:
    """Make ``site`` (e.g. Tahoe's ``WebishServer.site``) censor the governor token
    in its access log. Installing twice is harmless."""
    # HTTPFactory keeps its formatter in the private _logFormatter (set by its
    # __init__'s logFormatter argument); Tahoe gives it allmydata.webish._logFormatter.
    site._logFormatter = censoring_log_formatter(site._logFormatter, token)
