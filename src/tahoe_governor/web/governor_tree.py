"""The ``/governor`` resource tree, built in one call, and mounted on a Tahoe node in one call.

::

    /governor, /governor/            public page (HTML; ?t=json)
    /governor/<token>/               private page (HTML; ?t=json adds a CSRF token)
    /governor/<token>/<action>       POST: pause, resume, start, limit, clear
    /governor/<anything else>        404

The token is compared in constant time; a wrong one gets the same 404 as any
unknown path.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from tahoe_governor.status import GovernorControls
from tahoe_governor.throttle.reactor_clock import ReactorClock
from tahoe_governor.web.access_log import install_access_log_censoring
from tahoe_governor.web.access_tokens import CsrfTokens, tokens_equal
from tahoe_governor.web.private_page import PrivateTree
from tahoe_governor.web.public_page import PublicStatusPage
from tahoe_governor.web.rate_history import RateHistory
from tahoe_governor.web.request_errors import NotFound

MOUNT_PATH = b"governor"


class GovernorResource(Resource):
    """``/governor``: the public page, and the private tree behind the token.

    ``history`` samples the status for the charts; it is a service the owner
    starts and stops (:func:`mount_governor_pages` parents it to the web server).
    """

    def __init__(
        self,
        controls: GovernorControls,
        token: str,
        reactor: ReactorClock,
        tz: tzinfo = UTC,
        history: RateHistory | None = None,
    ) -> None:
        super().__init__()
        if len(token) < 26 or not token.isalnum():
            raise ValueError("the private token must be at least 26 letters and digits "
                             "(128 bits): use access_tokens.load_or_create_token(nodedir)")
        self.history = history if history is not None else RateHistory(controls.status, reactor)
        self._token = token
        self._public = PublicStatusPage(controls, self.history, reactor, tz)
        self._private = PrivateTree(controls, CsrfTokens(token), self.history, reactor, tz)
        self._not_found = NotFound()

    def render(self, request: IRequest) -> Any:
        return self._public.render(request)

    def getChild(self, name: bytes, request: IRequest) -> Resource:
        if name == b"":
            return self._public
        if tokens_equal(name.decode("utf-8", "replace"), self._token):
            return self._private
        return self._not_found


def governor_resource(
    controls: GovernorControls,
    token: str,
    reactor: ReactorClock,
    tz: tzinfo = UTC,
) -> GovernorResource:
    """The ``/governor`` tree for ``controls``, guarded by ``token``.

    ``reactor`` times the CSRF tokens and the rate history; ``tz`` is the zone
    the pages show times in (pass the policy's zone). Start
    ``resource.history`` (a service) for the charts.
    """
    return GovernorResource(controls, token, reactor, tz)


def mount_governor_pages(
    webish: Any,
    controls: GovernorControls,
    token: str,
    reactor: ReactorClock,
    tz: tzinfo = UTC,
) -> GovernorResource:
    """Mount ``/governor`` on a Tahoe node's web server, in one call.

    ``webish`` is the node's ``allmydata.webish.WebishServer``
    (``client.getServiceNamed("webish")``). This puts the tree at
    ``/governor`` on its root, censors the token in its access log, and runs
    the rate history as a child service of the web server (so it starts and
    stops with it).
    """
    resource = governor_resource(controls, token, reactor, tz)
    webish.root.putChild(MOUNT_PATH, resource)
    install_access_log_censoring(webish.site, token)
    resource.history.setServiceParent(webish)
    return resource
