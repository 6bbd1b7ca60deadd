"""``/governor/<token>/``: the owner's page, its JSON API and its controls.

``GET /governor/<token>/`` shows everything the public page shows plus the
details (sources, targets, latest snapshot caps, files in flight, overrides)
and the control forms. ``?t=json`` gives
:func:`~tahoe_governor.status.private_dict` of the snapshot plus a
fresh ``csrf`` token, for the command. Each snapshot is rendered once for
all its readers, with placeholders where each response gets its own CSRF token
and script nonce (:mod:`~tahoe_governor.web.rendered_once`).

``POST /governor/<token>/<action>`` carries out a control (see
:mod:`tahoe_governor.web.control_actions`). It must carry a CSRF token issued
by this page (form field ``csrf`` or header ``X-Governor-CSRF``): without a
valid one the answer is 403 and nothing changes. ``GET`` on a control is 405.
A browser's POST is answered with 303 back to the page; a JSON request (JSON
body, ``?t=json`` or ``Accept: application/json``) gets
``{"ok": true, "message": ..., "status": ...}``; refusals are 400 (with what
was wrong and what was expected), 403, 404, 405, 413 or 415.

Routing to this tree is by the token, compared in constant time, in
:mod:`tahoe_governor.web.governor_tree`. Links, form actions and the 303
are relative, so the token is in no header this code writes except the 301
from ``/governor/<token>`` to ``/governor/<token>/`` (the address the browser
already has); pages carry ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import attrs
from twisted.python import log
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.template import Tag, tags

from tahoe_governor.policy.units import format_duration
from tahoe_governor.status import (
    ControlError,
    GovernorControls,
    GovernorStatus,
    JobStatus,
    private_dict,
)
from tahoe_governor.status.display_names import display_name
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.web.access_tokens import CsrfTokens
from tahoe_governor.web.archive_listing import ArchiveListingResource
from tahoe_governor.web.control_actions import ACTIONS, UnreadableBody, request_fields
from tahoe_governor.web.human_units import (
    format_bytes,
    format_instant,
    format_seconds,
    node_caps,
)
from tahoe_governor.web.maintenance_sections import unrecoverable_list
from tahoe_governor.web.page_layout import (
    html_bytes,
    html_response,
    json_body,
    json_bytes,
    json_response,
    new_nonce,
    page,
    wants_json,
)
from tahoe_governor.web.rate_history import RateHistory
from tahoe_governor.web.rendered_once import RenderedOnce, fill_in, per_response_marker
from tahoe_governor.web.request_errors import (
    GovernorPage,
    NotFound,
    error_body,
    requested_format,
)
from tahoe_governor.web.status_sections import (
    chart_instant,
    charts_section,
    definition_list,
    jobs_section,
    link_section,
    peers_section,
    quotas_section,
)

CSRF_FIELD = "csrf"
CSRF_HEADER = b"x-governor-csrf"
REFRESH_SECONDS = 15

# Reloads the page now and then, unless the owner is filling in a form.
REFRESH_SCRIPT = """
var edited = false;
document.addEventListener("input", function () { edited = true; });
setInterval(function () {
  if (edited) { return; }
  var active = document.activeElement;
  if (active) { if (active.matches("input, select")) { return; } }
  location.reload();
}, REFRESH_MS);
""".replace("REFRESH_MS", str(REFRESH_SECONDS * 1000))

_OVERRIDE = re.compile(r"^(node|peer|job)(?: (.+?))? (up|down) = (.+)$")


def parse_override(text: str) -> tuple[str, str, str, str] | None:
    """``"peer dsl up = 100kbps"`` -> ``("peer", "dsl", "up", "100kbps")``; None if not a limit."""
    match = _OVERRIDE.match(text)
    if match is None:
        return None
    scope, name, direction, rate = match.groups()
    return scope, name or "", direction, rate


def _hidden(name: str, value: str) -> Tag:
    return tags.input(type="hidden", name=name, value=value)


def _setting_values(job: JobStatus) -> tuple[tuple[str, str, str, str], ...]:
    """``(setting, label, value in force as written in tahoe.cfg, placeholder)`` of a job."""
    cpu = "unlimited" if job.cpu_budget is None else f"{job.cpu_budget * 100:g}%"
    return (
        ("allowed_times", "Allowed times", job.allowed_times, "any time, e.g. 2200-0600"),
        ("frequency", "Frequency", format_duration(job.frequency_seconds), "e.g. 1week"),
        ("cpu", "CPU budget", cpu, "e.g. 25%, or unlimited"),
    )


def _job_settings(job: JobStatus, csrf: str) -> Tag:
    """One form per setting the owner may change live, each with "back to tahoe.cfg"."""
    forms = []
    for setting, label, value, placeholder in _setting_values(job):
        overridden = setting in job.settings_overridden
        forms.append(tags.form(
            _hidden(CSRF_FIELD, csrf), _hidden("job", job.name), _hidden("setting", setting),
            tags.label(label, " ", tags.input(
                name="value", value=value, placeholder=placeholder,
                **{"aria-label": f"{job.name} {setting}"})),
            tags.button("Set", type="submit"),
            *((tags.button("Back to tahoe.cfg", type="submit", formaction="unset"),
               tags.span(" (overridden)", class_="muted")) if overridden else ()),
            method="post", action="setting",
        ))
    return tags.details(
        tags.summary("Settings"),
        tags.p("As in tahoe.cfg. A change applies at once and lasts until set back, across "
               "restarts and reloads.", class_="muted"),
        *forms,
        **({"open": ""} if job.settings_overridden else {}),
    )


class PrivateTree(Resource):
    """``/governor/<token>``: sends a browser on to ``<token>/``; routes the page and controls."""

    def __init__(
        self,
        controls: GovernorControls,
        csrf: CsrfTokens,
        history: RateHistory,
        reactor: ReactorClock,
        tz: tzinfo,
    ) -> None:
        super().__init__()
        self.putChild(b"", PrivateStatusPage(controls, csrf, history, reactor, tz))
        for action in ACTIONS:
            self.putChild(action.encode("ascii"), ControlResource(action, controls, csrf, reactor))
        self.putChild(b"archives", ArchiveListingResource(controls))

    def getChild(self, name: bytes, request: IRequest) -> Resource:
        return NotFound()

    def render(self, request: IRequest) -> bytes:
        # /governor/<token> without the slash: relative links need the slash.
        request.setResponseCode(301)
        request.setHeader(b"location", request.prepath[-1] + b"/")
        request.setHeader(b"referrer-policy", b"no-referrer")
        return b""


class PrivateStatusPage(GovernorPage):
    """The private page (HTML with the control forms) and its JSON."""

    back_link = "./"

    def __init__(
        self,
        controls: GovernorControls,
        csrf: CsrfTokens,
        history: RateHistory,
        reactor: ReactorClock,
        tz: tzinfo,
    ) -> None:
        super().__init__()
        self._controls = controls
        self._csrf = csrf
        self._history = history
        self._reactor = reactor
        self._tz = tz
        # renderings with their placeholders: (body, csrf) and (body, csrf, nonce)
        self._json: RenderedOnce[tuple[bytes, str]] = RenderedOnce()
        self._html: RenderedOnce[tuple[bytes, str, str]] = RenderedOnce()

    def render_GET(self, request: IRequest) -> bytes:
        fmt = requested_format(request)
        if fmt is None:
            return error_body(request, 400, "Unknown t= value: expected t=json or no t.", "./")
        status = self._controls.status()
        now = self._reactor.seconds()
        csrf = self._csrf.issue(now)
        if fmt == "json":
            body, csrf_mark = self._json.get(status, lambda: self._json_rendering(status))
            return json_response(request, fill_in(body, {csrf_mark: csrf}))
        nonce = new_nonce()
        charts_at = chart_instant(now)
        body, csrf_mark, nonce_mark = self._html.get(
            (status, charts_at, self._history.recorded),
            lambda: self._html_rendering(status, charts_at))
        return html_response(request, fill_in(body, {csrf_mark: csrf, nonce_mark: nonce}), nonce)

    @staticmethod
    def _json_rendering(status: GovernorStatus) -> tuple[bytes, str]:
        csrf = per_response_marker()
        return json_bytes({**private_dict(status), CSRF_FIELD: csrf}), csrf

    def _html_rendering(self, status: GovernorStatus, charts_at: float) -> tuple[bytes, str, str]:
        csrf, nonce = per_response_marker(), per_response_marker()
        return html_bytes(self._document(status, csrf, nonce, charts_at)), csrf, nonce

    def _document(self, status: GovernorStatus, csrf: str, nonce: str, charts_at: float) -> Tag:
        own = display_name(status.nickname)
        title = "Backups" + (f" of {own}" if own else "") + " (private)"
        return page(
            title,
            tags.header(
                tags.h1(title),
                tags.p(f"As of {format_instant(status.at, status.at, self._tz)}. "
                       "Keep this address to yourself: it lets anyone holding it pause "
                       "backups and change limits. ",
                       tags.a("JSON", href="?t=json"), class_="muted"),
                *([tags.p(status.recovery_sheet_reminder, class_="error", role="alert")]
                  if status.recovery_sheet_reminder else []),
            ),
            jobs_section(status, self._tz, lambda job: self._job_private(job, csrf)),
            self._limits_section(status, csrf),
            charts_section(self._history, charts_at),
            peers_section(status.peers, full_tubids=True),
            quotas_section(status.quotas, status.at, self._tz),
            link_section(status.link),
            script=REFRESH_SCRIPT,
            nonce=nonce,
        )

    def _job_private(self, job: JobStatus, csrf: str) -> Sequence[Any]:
        in_flight = getattr(job.progress, "private_current_paths", ())  # a backup run's
        details = definition_list([
            ("Source", (tags.code(job.source) if job.source else "?")
             if job.kind == "backup" else None),
            ("Target", tags.code(job.target) if job.target else "?"),
            ("Latest snapshot", (tags.code(job.latest_snapshot_cap)
             if job.latest_snapshot_cap else "none yet") if job.kind == "backup" else None),
            ("Cap set by", job.limit_source or "?"),
            ("In flight", tags.ul(*(tags.li(tags.code(p)) for p in in_flight))
             if in_flight else None),
        ])
        history = self._history_table(job, status_at=self._reactor.seconds())
        pause_or_resume = "resume" if job.state == "paused" else "pause"
        controls = tags.div(
            tags.form(
                _hidden(CSRF_FIELD, csrf), _hidden("job", job.name),
                tags.button(pause_or_resume.capitalize(), type="submit"),
                method="post", action=pause_or_resume,
            ),
            tags.form(
                _hidden(CSRF_FIELD, csrf), _hidden("job", job.name),
                tags.button("Run now", type="submit"),
                tags.label(tags.input(type="checkbox", name="force", value="on"),
                           " force (outside allowed times)"),
                method="post", action="start",
            ),
            class_="controls",
        )
        lost = unrecoverable_list(job)  # a maintenance task's findings, by name
        return (*([lost] if lost is not None else []),
                tags.details(tags.summary("Details"), details, open=""),
                tags.details(tags.summary("Last runs"), history), controls,
                _job_settings(job, csrf) if job.kind == "backup" else "")

    def _history_table(self, job: JobStatus, status_at: float) -> Tag:
        if not job.recent_runs:
            return tags.p("No run recorded yet.")
        body = tags.tbody()
        for run in job.recent_runs:
            duration = run.duration_seconds
            body(tags.tr(
                tags.td(format_instant(run.started, status_at, self._tz)),
                tags.td(run.outcome),
                tags.td(str(run.files_seen)),
                tags.td(format_bytes(run.bytes_uploaded)),
                tags.td("-" if duration is None else format_seconds(duration)),
                tags.td(tags.code(run.detail) if run.detail else ""),
            ))
        return tags.table(tags.thead(tags.tr(
            tags.th("Started"), tags.th("Outcome"), tags.th("Files"), tags.th("Uploaded"),
            tags.th("Duration"), tags.th("Archive or error"))), body)

    def _limits_section(self, status: GovernorStatus, csrf: str) -> Tag:
        overrides = tags.ul()
        for text in status.overrides:
            parsed = parse_override(text)
            item = tags.li(tags.code(text), " ")
            if parsed is not None:
                scope, name, direction, _rate = parsed
                item(tags.form(
                    _hidden(CSRF_FIELD, csrf), _hidden("scope", scope), _hidden("name", name),
                    _hidden("direction", direction),
                    tags.button("Clear", type="submit"),
                    method="post", action="clear",
                ))
            overrides(item)
        names = tags.datalist(id="limit-names")
        for job in status.jobs:
            names(tags.option(value=job.name))
        for peer in status.peers:
            # A nickname that needs escaping would not select its peer: offer the TubID.
            plain = peer.nickname and display_name(peer.nickname) == peer.nickname
            names(tags.option(value=peer.nickname if plain else peer.tubid))
        form = tags.form(
            _hidden(CSRF_FIELD, csrf),
            tags.select(*(tags.option(s, value=s) for s in ("peer", "job", "node")),
                        name="scope", **{"aria-label": "scope"}),
            tags.input(name="name", list="limit-names", placeholder="peer or job (not for node)",
                       **{"aria-label": "name"}),
            tags.select(tags.option("up", value="up"), tags.option("down", value="down"),
                        name="direction", **{"aria-label": "direction"}),
            tags.input(name="rate", placeholder="200kbps, 60%, unlimited",
                       **{"aria-label": "rate"}),
            tags.button("Set limit", type="submit"),
            tags.button("Clear override", type="submit", formaction="clear"),
            names,
            method="post", action="limit", class_="wide",
        )
        node = status.link
        return tags.section(
            tags.h2("Limits"),
            tags.div(
                tags.p(f"Node cap: {node_caps(attrs.asdict(node))}."),
                tags.h3("Overrides in force"),
                overrides if status.overrides else tags.p("None: tahoe.cfg as written."),
                tags.h3("Change a limit"),
                tags.p("Rates as in tahoe.cfg. An override lasts until cleared, "
                       "across restarts.", class_="muted"),
                form,
                class_="card",
            ),
        )


class ControlResource(GovernorPage):
    """``POST /governor/<token>/<action>``: one control (GET is refused with 405)."""

    allowed_methods = (b"POST",)
    back_link = "./"

    def __init__(
        self,
        action: str,
        controls: GovernorControls,
        csrf: CsrfTokens,
        reactor: ReactorClock,
    ) -> None:
        super().__init__()
        self._action = action
        self._perform = ACTIONS[action]
        self._controls = controls
        self._csrf = csrf
        self._reactor = reactor

    def method_refusal(self, method: str) -> str:
        return (f"{self._action!r} is a control: expected a POST from the private page's "
                f"form (with its CSRF token), not {method}.")

    def render_POST(self, request: IRequest) -> bytes:
        try:
            fields = request_fields(request)
        except UnreadableBody as e:
            return error_body(request, e.code, str(e), "./")
        given = fields.pop(CSRF_FIELD, None)
        if given is None:
            header = request.getHeader(CSRF_HEADER)
            given = header.decode("ascii", "replace") if header else None
        if not isinstance(given, str) or not self._csrf.check(given, self._reactor.seconds()):
            log.msg(f"tahoe-governor: refused {self._action}: missing or invalid CSRF token")
            return error_body(
                request, 403,
                "Missing, forged or expired CSRF token: expected the token of a page "
                "loaded in the last day (reload the private page and try again).", "./")
        try:
            message = self._perform(self._controls, fields)
        except ControlError as e:
            return error_body(request, 400, str(e), "./")
        log.msg(f"tahoe-governor: {message}")
        if wants_json(request):
            return json_body(request, {"ok": True, "action": self._action, "message": message,
                                       "status": private_dict(self._controls.status())})
        request.setResponseCode(303)
        request.setHeader(b"location", b"./")
        return b""
