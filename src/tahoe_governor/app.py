"""The application: a governed node with its governor, status pages and metrics.

The one place that puts every layer together, as ``tahoe-governor run`` and
the demo start it: the node integration makes the governed client node,
:func:`~tahoe_governor.node.governor.attach_governor` wires the policy,
shaper, meters and backup scheduler around it, and the web layer mounts
``/governor`` (public and private pages) and ``/metrics`` on its web server.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from tahoe_governor.node.governor import Governor, attach_governor
from tahoe_governor.web.access_tokens import load_or_create_token
from tahoe_governor.web.governor_tree import mount_governor_pages
from tahoe_governor.web.metrics import metrics_resource


def govern(reactor: Any, client: Any, tz: ZoneInfo | None = None) -> Governor:
    """Attach the governor to a started governed client and mount its web pages.

    Without a web port the node still runs governed; only the pages are missing.
    """
    governor = attach_governor(reactor, client, tz)
    if client.has_web_server:
        governor.token = load_or_create_token(governor.nodedir)
        mount_governor_pages(
            client.getServiceNamed("webish"), governor, governor.token, reactor,
            tz=governor.live.policy.tz,
        )
        client.mount("metrics", metrics_resource(governor.status))
    return governor


async def start_governor(reactor: Any, nodedir: str, tz: ZoneInfo | None = None) -> Governor:
    """Run the governed node in ``nodedir`` in this process, governed, with its pages.

    For embedding (the demo, tests); ``tahoe-governor run`` calls :func:`govern`
    from the node runner instead. ``governor.stop()`` stops the node and the jobs.
    """
    from tahoe_governor.node.client import create_governed_client
    from tahoe_governor.node.config import read_governed_config
    from tahoe_governor.throttle import Shaper

    config = read_governed_config(nodedir)
    client = await create_governed_client(config, Shaper(reactor), reactor)
    client.startService()
    return govern(reactor, client, tz)
