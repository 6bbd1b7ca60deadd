"""Serve the /governor pages of an in-memory node on 127.0.0.1, as a governed Tahoe node would.

For the end-to-end tests (the command, the browser): ``python -m
tests.web.serve_governor NODEDIR`` mounts the tree with
``mount_governor_pages`` on a real ``allmydata.webish.TahoeLAFSSite``
listening on a free loopback port, logs like Tahoe (the access log into
``NODEDIR/logs/twistd.log``), writes ``NODEDIR/node.url`` and the token file
like the node, prints ``ready`` and serves until SIGTERM or ``--seconds``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile

import attrs
from allmydata.webish import TahoeLAFSSite, anonymous_tempfile_factory
from twisted.application.service import MultiService
from twisted.python import log
from twisted.web.resource import Resource

from tahoe_governor.web.access_tokens import load_or_create_token
from tahoe_governor.web.governor_tree import mount_governor_pages
from tahoe_governor.web.rate_history import RateHistory, sample_of
from tests.web.controls_double import FRIEND_TUBID, PARENTS_TUBID, InMemoryControls


class LoopbackWebServer(MultiService):
    """The parts of Tahoe's WebishServer that mount_governor_pages uses."""

    def __init__(self, tempdir: str) -> None:
        super().__init__()
        self.root = Resource()
        self.site = TahoeLAFSSite(anonymous_tempfile_factory(tempdir), self.root)


def seed_history(history: RateHistory, controls: InMemoryControls, now: float) -> None:
    """Fifteen minutes of varied past rates, so the charts have something to draw."""
    steps = int(history.span_seconds // history.interval_seconds)
    photos = controls.jobs["photos"]
    base_progress = photos.progress
    assert base_progress is not None
    saved = dict(controls.peer_rates)
    for i in range(steps):
        wave = math.sin(i / 9.0)
        controls.peer_rates = {
            PARENTS_TUBID: (23_000.0 + 1_800 * wave, 700.0 + 200 * wave),
            FRIEND_TUBID: (38_000.0 + 9_000 * math.sin(i / 5.0), 1_500.0 + 400 * wave),
        }
        photos.progress = attrs.evolve(base_progress,
                                       rate_bytes_per_second=22_000.0 + 2_500 * wave)
        at = now - (steps - i) * history.interval_seconds
        history.record(sample_of(controls.status(), at))
    controls.peer_rates = saved
    photos.progress = base_progress


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("nodedir")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="stop by itself after this long")
    args = parser.parse_args(argv)
    from twisted.internet import reactor

    os.makedirs(os.path.join(args.nodedir, "logs"), exist_ok=True)
    log.startLogging(open(os.path.join(args.nodedir, "logs", "twistd.log"), "a"),
                     setStdout=False)
    token = load_or_create_token(args.nodedir)
    controls = InMemoryControls(now=reactor.seconds())
    web = LoopbackWebServer(tempfile.mkdtemp(prefix="governor-web-"))
    resource = mount_governor_pages(web, controls, token, reactor)
    seed_history(resource.history, controls, reactor.seconds())
    web.startService()  # starts the history's sampling, after the seeded past
    port = reactor.listenTCP(0, web.site, interface="127.0.0.1")
    with open(os.path.join(args.nodedir, "node.url"), "w") as f:
        f.write(f"http://127.0.0.1:{port.getHost().port}/\n")
    reactor.callLater(args.seconds, reactor.stop)
    reactor.addSystemEventTrigger("before", "shutdown", web.stopService)
    print("ready", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
