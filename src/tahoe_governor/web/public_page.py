"""``GET /governor``: the public status page, guessable by design, and its JSON.

Shows what anyone who can reach the node's web port may see: job names,
states, counts, bytes, rates, ETA, last completed run and next start, each
peer's rate and cap, and the charts of the last minutes. ``?t=json`` gives
:func:`~tahoe_governor.status.public_dict` of the snapshot. Nothing
private is read here: no capability, no local path, no token, no control.
Each snapshot is rendered once for all its readers
(:mod:`~tahoe_governor.web.rendered_once`).
"""

from __future__ import annotations

from datetime import tzinfo

from twisted.web.iweb import IRequest
from twisted.web.template import tags

from tahoe_governor.status import GovernorControls, GovernorStatus, public_dict
from tahoe_governor.status.display_names import display_name
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.web.human_units import format_instant
from tahoe_governor.web.page_layout import (
    html_bytes,
    html_response,
    json_bytes,
    json_response,
    page,
)
from tahoe_governor.web.rate_history import RateHistory
from tahoe_governor.web.rendered_once import RenderedOnce
from tahoe_governor.web.request_errors import GovernorPage, error_body, requested_format
from tahoe_governor.web.status_sections import (
    chart_instant,
    charts_section,
    jobs_section,
    link_section,
    peers_section,
    quotas_section,
)

REFRESH_SECONDS = 10


class PublicStatusPage(GovernorPage):
    """The public page (HTML, refreshing every :data:`REFRESH_SECONDS`) and ``?t=json``."""

    def __init__(
        self,
        controls: GovernorControls,
        history: RateHistory,
        reactor: ReactorClock,
        tz: tzinfo,
    ) -> None:
        super().__init__()
        self._controls = controls
        self._history = history
        self._reactor = reactor
        self._tz = tz
        self._html: RenderedOnce[bytes] = RenderedOnce()
        self._json: RenderedOnce[bytes] = RenderedOnce()

    def render_GET(self, request: IRequest) -> bytes:
        fmt = requested_format(request)
        if fmt is None:
            return error_body(request, 400, "Unknown t= value: expected t=json or no t.")
        status = self._controls.status()
        if fmt == "json":
            return json_response(
                request, self._json.get(status, lambda: json_bytes(public_dict(status))))
        charts_at = chart_instant(self._reactor.seconds())
        body = self._html.get((status, charts_at, self._history.recorded),
                              lambda: self._document(status, charts_at))
        return html_response(request, body)

    def _document(self, status: GovernorStatus, charts_at: float) -> bytes:
        title = f"Backups of {display_name(status.nickname)}" if status.nickname else "Backups"
        return html_bytes(page(
            title,
            tags.header(
                tags.h1(title),
                tags.p(f"As of {format_instant(status.at, status.at, self._tz)}; "
                       f"refreshes every {REFRESH_SECONDS} s. ",
                       tags.a("JSON", href="?t=json"), class_="muted"),
            ),
            jobs_section(status, self._tz),
            charts_section(self._history, charts_at),
            peers_section(status.peers),
            quotas_section(status.quotas, status.at, self._tz),
            link_section(status.link),
            refresh_seconds=REFRESH_SECONDS,
        ))
