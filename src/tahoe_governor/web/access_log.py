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
"""

from __future__ import annotations

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


def _censor_url(url: bytes) -> bytes:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=censor_governor_path(parts.path)))


class _CensoredRequest:
    """A view of a request for a log formatter: the same, with the token censored."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.uri = censor_governor_path(request.uri)
        self.path = censor_governor_path(getattr(request, "path", request.uri))

    def getHeader(self, name: bytes | str) -> bytes | None:
        value: bytes | None = self._request.getHeader(name)
        key = name.lower() if isinstance(name, bytes) else name.lower().encode("ascii")
        if value is not None and key in (b"referer", b"referrer"):
            return _censor_url(value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def censoring_log_formatter(inner: LogFormatter) -> LogFormatter:
    """``inner`` with ``/governor/<token>`` censored in the request it formats."""
    if getattr(inner, "censors_governor_token", False):
        return inner

    def format_line(timestamp: str, request: Any) -> str:
        return inner(timestamp, _CensoredRequest(request))

    format_line.censors_governor_token = True  # type: ignore[attr-defined]
    return format_line


def install_access_log_censoring(site: HTTPFactory) -> None:
    """Make ``site`` (e.g. Tahoe's ``WebishServer.site``) censor the governor token
    in its access log. Installing twice is harmless."""
    # HTTPFactory keeps its formatter in the private _logFormatter (set by its
    # __init__'s logFormatter argument); Tahoe gives it allmydata.webish._logFormatter.
    site._logFormatter = censoring_log_formatter(site._logFormatter)
