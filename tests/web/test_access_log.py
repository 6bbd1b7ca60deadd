"""The private token never reaches the web server's access log."""

from __future__ import annotations

import io

import pytest
from allmydata.webish import TahoeLAFSSite, _logFormatter, anonymous_tempfile_factory
from twisted.internet.address import IPv4Address
from twisted.web.http import combinedLogFormatter
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from tahoe_governor.web.access_log import (
    censor_governor_path,
    censoring_log_formatter,
    install_access_log_censoring,
)
from tests.web.web_client import TOKEN


@pytest.mark.parametrize(
    ("path", "logged", "why"),
    [
        (f"/governor/{TOKEN}/", "/governor/[CENSORED]/", "private page"),
        (f"/governor/{TOKEN}", "/governor/[CENSORED]", "without the slash"),
        (f"/governor/{TOKEN}/pause", "/governor/[CENSORED]/pause", "a control keeps its name"),
        (f"/governor/{TOKEN}/?t=json", "/governor/[CENSORED]/?t=json", "query kept"),
        (f"/%67overnor/{TOKEN}/", "/%67overnor/[CENSORED]/", "encoded segment routes too"),
        (f"//governor/{TOKEN}/", "//governor/[CENSORED]/", "Tahoe's root serves ''"),
        (f"/governor//governor/{TOKEN}", "/governor//governor/[CENSORED]", "second try"),
        ("/governor", "/governor", "public page"),
        ("/governor/", "/governor/", "public page with slash"),
        ("/governor?t=json", "/governor?t=json", "public JSON"),
        ("/statistics", "/statistics", "other pages untouched"),
    ],
)
def test_censor_governor_path(path: str, logged: str, why: str) -> None:
    """Each row: the path as requested, as it may be logged."""
    assert censor_governor_path(path.encode()) == logged.encode(), why


def _request(uri: str, referer: str | None = None) -> DummyRequest:
    request = DummyRequest([])
    request.uri = uri.encode()
    request.path = uri.split("?")[0].encode()
    request.method = b"POST"
    request.code = 303
    request.sentLength = 0
    request.client = IPv4Address("TCP", "127.0.0.1", 50000)
    if referer is not None:
        request.requestHeaders.setRawHeaders(b"referer", [referer.encode()])
    return request


def test_tahoes_formatter_censors_our_token() -> None:
    """Tahoe's own access-log formatter, wrapped, logs no token and still hides caps."""
    censored = censoring_log_formatter(_logFormatter)
    line = censored("ts", _request(f"/governor/{TOKEN}/pause"))
    assert TOKEN not in line
    assert line == "web: 127.0.0.1 POST /governor/[CENSORED]/pause 303 -"
    # Unwrapped, Tahoe would log it: this is what the wrapper is for.
    assert TOKEN in _logFormatter("ts", _request(f"/governor/{TOKEN}/pause"))
    cap_line = censored("ts", _request("/uri/URI:DIR2:abc:def?t=json"))
    assert cap_line == "web: 127.0.0.1 POST /uri/[CENSORED]?t=json 303 -"


def test_combined_formatter_censors_the_referer_too() -> None:
    """Twisted's combined log format writes the Referer: it is censored as well."""
    censored = censoring_log_formatter(combinedLogFormatter)
    line = censored("ts", _request(f"/governor/{TOKEN}/pause",
                                   referer=f"http://127.0.0.1:3456/governor/{TOKEN}/"))
    assert TOKEN not in line
    assert '"POST /governor/[CENSORED]/pause HTTP/1.0"' in line
    assert '"http://127.0.0.1:3456/governor/[CENSORED]/"' in line


ENCODED = "".join(f"%{ord(c):02X}" for c in TOKEN)


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        (f"/governor//{TOKEN}/", "an empty segment before the token"),
        (f"http://127.0.0.1:3456/governor/{TOKEN}/pause", "absolute-form request target"),
        (f"/governor/../governor/{TOKEN}/", "a '..' segment before it"),
        (f"/x/{TOKEN}/../../governor/", "the token anywhere in the path"),
        (f"/governor/{ENCODED}/", "every character %-encoded"),
        (f"/governor/%{ord(TOKEN[0]):02x}{TOKEN[1:]}/", "one character, lowercase hex"),
        (f"/governor/%25{ord(TOKEN[0]):02X}{TOKEN[1:]}/", "encoded twice"),
        (f"/governor?next=/governor/{TOKEN.upper()}/", "in the query, upper case"),
    ],
)
def test_the_token_is_censored_whatever_the_shape(uri: str, why: str) -> None:
    """Given the token, the log replaces it (and its %-encoded forms) anywhere in the
    request line and the Referer; the rest of the line stays."""
    censored = censoring_log_formatter(combinedLogFormatter, TOKEN)
    line = censored("ts", _request(uri, referer="http://127.0.0.1:3456" + uri))
    assert TOKEN not in line.lower(), why
    assert TOKEN[1:] not in line, why
    assert line.count("[CENSORED]") >= 2, why
    assert "POST " in line


def test_install_on_tahoes_site_twice(tmp_path) -> None:
    """Installed on a real TahoeLAFSSite (twice is harmless), its log has no token."""
    site = TahoeLAFSSite(anonymous_tempfile_factory(str(tmp_path)), Resource())
    install_access_log_censoring(site)
    first = site._logFormatter
    install_access_log_censoring(site)
    assert site._logFormatter is first
    site._logFile = io.StringIO()
    site._logDateTime = "ts"
    site.log(_request(f"/governor/{TOKEN}/?t=json"))
    site.log(_request("/governor?t=json"))
    assert site._logFile.getvalue().splitlines() == [
        "web: 127.0.0.1 POST /governor/[CENSORED]/?t=json 303 -",
        "web: 127.0.0.1 POST /governor?t=json 303 -",
    ]
