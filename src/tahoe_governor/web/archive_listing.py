"""``GET /governor/<token>/archives?job=NAME``: a job's archives on the grid, as JSON.

The answer is :func:`~tahoe_governor.status.private_dict` of the node's
:class:`~tahoe_governor.status.JobArchives`: every entry of the job's
``Archives/`` newest first, with the run that made it and what the job's
``bN.keep`` does with it. It lives under the private token because a listing
tells when the target was written and holds the names found there. Refusals:
400 without a ``job`` or for an unknown one (the message lists the jobs),
502 when the grid cannot be read (the kind of error only: a grid error's
message may hold a capability).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python import log
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET

from tahoe_governor.status import ControlError, GovernorControls, JobArchives, private_dict
from tahoe_governor.web.page_layout import json_body
from tahoe_governor.web.request_errors import GovernorPage


class ArchiveListingResource(GovernorPage):
    """The JSON listing of one job's archives (see the module documentation)."""

    def __init__(self, controls: GovernorControls) -> None:
        super().__init__()
        self._controls = controls

    def render_GET(self, request: IRequest) -> Any:
        names = request.args.get(b"job") or [b""]
        job = names[0].decode("utf-8", "replace").strip()
        if not job:
            return json_body(request, {"error": "Missing 'job': expected ?job=NAME, the name of "
                                                "a [backups] job.", "code": 400}, 400)
        try:
            d: Deferred[JobArchives] = self._controls.archives(job)
        except ControlError as e:
            return json_body(request, {"error": str(e), "code": 400}, 400)
        finished = request.notifyFinish()
        d.addCallbacks(lambda listing: self._write(request, 200, private_dict(listing)),
                       lambda failure: self._failed(request, failure))
        finished.addErrback(lambda _: d.cancel())  # the client went away
        return NOT_DONE_YET

    def _failed(self, request: IRequest, failure: Failure) -> None:
        if failure.check(ControlError):
            self._write(request, 400, {"error": failure.getErrorMessage(), "code": 400})
            return
        kind = failure.type.__name__
        log.msg(f"tahoe-governor: listing a job's archives failed ({kind})")
        self._write(request, 502, {"error": f"the job's Archives could not be read from the "
                                            f"grid ({kind}): are enough storage servers "
                                            "connected?", "code": 502})

    @staticmethod
    def _write(request: IRequest, code: int, value: Any) -> None:
        if getattr(request, "_disconnected", False) or request.finished:
            return
        request.write(json_body(request, value, code))
        request.finish()
