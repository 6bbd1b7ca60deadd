"""End to end: a real Prometheus scrapes a real governed node backing up on the
local grid, and every query of the shipped Grafana dashboard returns data.

The node's tahoe.cfg sets every kind of limit in both directions (an
unlimited cap has no sample, so its panel would rightly be empty): node
limits, capacities, busy thresholds, a peer cap each way, a second peer
under an automatic cap (its chosen rate and round trips), a monthly upload
quota, a job with a
bandwidth and a CPU budget that is still running while Prometheus scrapes,
a small job that has completed (last success, next start), and a maintenance
task that has completed a pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from foolscap.ipb import DeadReferenceError
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.grid import LocalGrid
from tests.node.governed_grid import (  # noqa: F401 (grid_on_class is a fixture)
    grid_on_class,
    make_tree,
    start_governed_node,
    stop_node,
    wait_for,
)
from tests.node.recording_shaper import temp_dir
from tests.prometheus_harness import PROMETHEUS_BINARY, PrometheusServer, queries_without_data
from tests.system_programs import require_programs

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


@pytest.mark.e2e
@pytest.mark.usefixtures("grid_on_class")
class DashboardOnRealNodeTests(TestCase):
    """The shipped scrape job and dashboard against a governed node at work."""

    grid: LocalGrid
    timeout = 150

    def test_every_dashboard_query_returns_data(self) -> defer.Deferred[None]:
        """Prometheus scrapes the node's /metrics mid-backup; every panel has data."""
        require_programs((PROMETHEUS_BINARY,), ("prometheus",))
        return defer.ensureDeferred(self._every_dashboard_query_returns_data())

    async def _every_dashboard_query_returns_data(self) -> None:
        base = temp_dir(self)
        make_tree(base / "photos", files=20, size=200_000)
        make_tree(base / "documents", files=3, size=10_000)
        dsl, parents = self.grid.servers[0], self.grid.servers[1]
        nodedir = self.grid.make_client_dir(
            base / "client",
            extra_cfg=(
                "[backups]\n"
                f"photos.source = {base / 'photos'}\n"
                "photos.target = backup:photos\n"
                "photos.frequency = 1week\n"
                "photos.bandwidth = 100kB/s\n"
                "photos.cpu = 90%\n"
                f"documents.source = {base / 'documents'}\n"
                "documents.target = backup:documents\n"
                "documents.frequency = 1day\n"
                "[maintenance]\n"
                "upkeep.target = backup:\n"
                "upkeep.frequency = 1week\n"
                "[bandwidth]\n"
                "capacity.up = 100MB/s\n"
                "capacity.down = 100MB/s\n"
                "limit.up = 50MB/s\n"
                "limit.down = 50MB/s\n"
                "busy.up = 90%\n"
                "busy.down = 90%\n"
                f"peer.{dsl.nickname}.up = 800kbps\n"
                f"peer.{dsl.nickname}.down = 8Mbps\n"
                f"peer.{parents.nickname}.up = auto\n"
                "quota.up = 1TB/month\n"
            ),
        )
        client, governor = await start_governed_node(nodedir)
        prometheus: PrometheusServer | None = None
        try:
            runners = governor.scheduler.runners
            await wait_for(lambda: runners["documents"].last_result is not None, 60,
                           "the small job to complete")
            await wait_for(lambda: runners["upkeep"].last_result is not None, 60,
                           "a maintenance pass to complete")
            photos = runners["photos"]
            await wait_for(
                lambda: (photos.progress() is not None
                         and photos.progress().eta_seconds is not None
                         and photos.progress().files_uploaded >= 1),
                60, "the large job to be under way with an ETA",
                lambda: (photos.progress(), photos.lifecycle.last_failure),
            )
            dashboard = json.loads((GRAFANA / "dashboards" / "tahoe-governor.json").read_text())
            (scrape_job,) = yaml.safe_load((GRAFANA / "prometheus-scrape.yml").read_text())[
                "scrape_configs"
            ]
            prometheus = PrometheusServer(governor.web_url + "metrics", scrape_job=scrape_job)
            # Prometheus's own calls block: run them off the reactor, which keeps
            # the node (and its /metrics) serving meanwhile.
            await deferToThread(prometheus.start)
            await deferToThread(prometheus.wait_ready)
            await deferToThread(prometheus.wait_for_scrape, 3)
            self.assertEqual(photos.lifecycle.state, "running", "still running while scraped")
            failing: list[Any] = await deferToThread(queries_without_data, prometheus, dashboard)
            self.assertEqual(
                failing, [], "\n".join(f"{q.panel} [{q.ref_id}]: {why}" for q, why in failing)
            )
            states = await deferToThread(
                prometheus.query, 'tahoe_governor_job_state{state="running"} == 1'
            )
            self.assertEqual({s["metric"]["job"] for s in states}, {"photos"})
            # No capability, local path or token reached Prometheus.
            stored = json.dumps(await deferToThread(
                prometheus.query, '{__name__=~"tahoe_governor_.+"}'))
            aliases = (nodedir / "private" / "aliases").read_text()
            secrets = [str(base), governor.token or "?", *(
                line.split(": ", 1)[1].strip() for line in aliases.splitlines())]
            for secret in secrets:
                self.assertNotIn(secret, stored)
        finally:
            if prometheus is not None:
                await deferToThread(prometheus.stop)
            await stop_node(client)
            # Stopping mid-run cuts uploads short; Tahoe logs their aborts.
            self.flushLoggedErrors(DeadReferenceError)
