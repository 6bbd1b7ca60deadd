"""End to end: a real Prometheus scrapes /metrics from a real twisted.web server
on loopback, and every query of the Grafana dashboard returns data.

The status source here is a realistic GovernorStatus whose counters grow with
time (tests/web/status_examples.py), not yet a governed node backing up on a
local grid: the shaper and the node integration are merged separately.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
import yaml
from twisted.internet.selectreactor import SelectReactor
from twisted.web.resource import Resource
from twisted.web.server import Site

from tahoe_governor.backup.status import GovernorStatus
from tahoe_governor.web.metrics import metrics_resource
from tests.prometheus_harness import (
    PrometheusServer,
    dashboard_queries,
    queries_without_data,
    substitute_variables,
)
from tests.web.status_examples import SECRETS, example_status

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


@contextmanager
def served_on_loopback(resource: Resource) -> Iterator[str]:
    """Serve ``resource`` at ``/metrics`` on 127.0.0.1 from a reactor of its own
    running in a thread (the test's thread blocks while Prometheus works)."""
    reactor = SelectReactor()
    root = Resource()
    root.putChild(b"metrics", resource)
    site = Site(root, reactor=reactor)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{port.getHost().port}/metrics"
    finally:
        reactor.callFromThread(port.stopListening)
        reactor.callFromThread(reactor.stop)
        thread.join(10)


def growing_status() -> Callable[[], GovernorStatus]:
    """A status source whose byte and wait counters grow with wall-clock time,
    as a running backup's do, with every limit and threshold set both ways (an
    unlimited cap has no sample, so its query would rightly return nothing)."""
    started = time.time()

    def source() -> GovernorStatus:
        now = time.time()
        status = example_status(at=now, elapsed=120.0 + (now - started))
        link = attrs.evolve(status.link, busy_down=800_000.0, node_limit_down=900_000.0)
        return attrs.evolve(status, link=link)

    return source


@pytest.mark.e2e
def test_every_dashboard_query_returns_data(prometheus_server) -> None:
    """Prometheus, configured with the shipped scrape job, scrapes the resource;
    then each target of each panel of the shipped dashboard returns data, and
    no secret reached Prometheus's storage."""
    dashboard = json.loads((GRAFANA / "dashboards" / "tahoe-governor.json").read_text())
    (scrape_job,) = yaml.safe_load((GRAFANA / "prometheus-scrape.yml").read_text())[
        "scrape_configs"
    ]
    with served_on_loopback(metrics_resource(growing_status())) as url:
        # Three scrapes: rate() over $__rate_interval needs two samples in range.
        server: PrometheusServer = prometheus_server(url, scrapes=3, scrape_job=scrape_job)
        failing = queries_without_data(server, dashboard)
        assert failing == [], "\n".join(f"{q.panel} [{q.ref_id}]: {why}" for q, why in failing)
        # The backup job's label survived the scrape (honor_labels), and the
        # state panel's encoding shows running (3) and paused (5).
        (state_panel,) = [q for q in dashboard_queries(dashboard) if q.panel == "Job state"]
        states = server.query(substitute_variables(state_panel.expr, dashboard))
        assert {s["metric"]["job"]: s["value"][1] for s in states} == {
            "photos": "3",
            "documents": "5",
        }
        values = json.dumps(server.query('{__name__=~"tahoe_governor_.+"}'))
        for secret in SECRETS:
            assert secret not in values
