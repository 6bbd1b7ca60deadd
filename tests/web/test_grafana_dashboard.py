"""The Grafana dashboard and provisioning files: importable shape, only exported
metrics, every variable defined, the panels the operations guide promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tahoe_governor.web.metrics import METRIC_NAMES
from tests.prometheus_harness import (
    dashboard_queries,
    substitute_variables,
    variable_queries,
)

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "tahoe-governor.json"


def load_dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def test_every_query_names_only_exported_metrics() -> None:
    """A query naming a metric the collector never exports would show nothing forever."""
    used = set()
    for query in dashboard_queries(load_dashboard()):
        names = set(re.findall(r"tahoe_governor_\w+", query.expr))
        assert names, f"{query.panel}: {query.expr} names no governor metric"
        used |= names
    assert used <= METRIC_NAMES, used - METRIC_NAMES


def test_dashboard_covers_what_a_user_tunes_by() -> None:
    """Peer rate against limit both ways, backlog, automatic caps (chosen rate,
    queueing delay against target), quotas (used against limit, reset), job
    state, files, bytes, ETA, next start, CPU against budget and link rate
    against capacity and threshold each have a query."""
    exprs = [q.expr for q in dashboard_queries(load_dashboard())]
    joined = "\n".join(exprs)
    for direction in ("up", "down"):
        for metric in ("peer_rate_bytes_per_second", "peer_limit_bytes_per_second"):
            assert any(
                f"tahoe_governor_{metric}{{" in e and f'direction="{direction}"' in e for e in exprs
            ), (metric, direction)
    for metric in (
        "peer_queued_bytes",
        "peer_wait_seconds_total",
        "peer_auto_rate_bytes_per_second",
        "peer_queueing_delay_seconds",
        "peer_target_delay_seconds",
        "peer_rtt_seconds",
        "job_state",
        "job_run_files_seen",
        "job_run_done_bytes",
        "job_run_estimated_bytes",
        "job_run_eta_seconds",
        "job_next_start_timestamp_seconds",
        "cpu_usage_ratio",
        "cpu_budget_ratio",
        "link_rate_bytes_per_second",
        "link_capacity_bytes_per_second",
        "link_busy_threshold_bytes_per_second",
        "maintenance_pass_checked_objects",
        "maintenance_unrecoverable_objects",
        "maintenance_last_success_timestamp_seconds",
        "maintenance_objects_total",
        "quota_used_bytes",
        "quota_limit_bytes",
        "quota_reset_timestamp_seconds",
    ):
        assert f"tahoe_governor_{metric}" in joined, metric


def test_panels_are_importable() -> None:
    """Unique ids and refIds, the datasource variable on every panel and target,
    grid positions inside 24 columns that never overlap."""
    dashboard = load_dashboard()
    assert dashboard["uid"] == "tahoe-governor"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_every_variable_a_query_uses_is_defined() -> None:
    """Substitution succeeds for every panel query and every variable's own query."""
    dashboard = load_dashboard()
    for query in dashboard_queries(dashboard):
        assert "$" not in substitute_variables(query.expr, dashboard)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert "$" not in substitute_variables(variable["query"]["query"], dashboard)


def test_substitution_rejects_an_unknown_variable() -> None:
    """A typo in a variable name is reported, not silently matched to everything."""
    with pytest.raises(ValueError, match=r"\$nope"):
        substitute_variables('tahoe_governor_overrides{instance=~"$nope"}', load_dashboard())


def test_provisioning_files() -> None:
    """The data source file provisions a Prometheus source; the dashboard
    provider reads files; the shipped scrape job keeps the backup `job` label."""
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    provider_file = GRAFANA / "provisioning/dashboards/tahoe-governor.yaml"
    providers = yaml.safe_load(provider_file.read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    scrape = yaml.safe_load((GRAFANA / "prometheus-scrape.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["honor_labels"] is True and job["metrics_path"] == "/metrics"


def test_substitution_handles_every_grafana_variable_syntax() -> None:
    """``$var``, ``${var}``, ``${var:format}`` and ``[[var]]`` are all replaced;
    given values win over the ``.*`` default; built-ins get fixed durations."""
    dashboard = {"templating": {"list": [{"name": "peer"}, {"name": "instance"}]}}
    expr = 'rate(x{a=~"$peer", b=~"${peer}", c=~"${instance:regex}", d=~"[[peer]]"}'
    expr += "[$__rate_interval])"
    assert substitute_variables(expr, dashboard, {"instance": "node1"}) == (
        'rate(x{a=~".*", b=~".*", c=~"node1", d=~".*"}[15s])'
    )


def test_variable_queries_become_promql() -> None:
    """Each ``label_values(selector, label)`` variable is checked as ``count by``."""
    queries = {q.panel: q.expr for q in variable_queries(load_dashboard())}
    assert queries["$backup_job"] == (
        'count by (job) (tahoe_governor_job_state{instance=~"$instance"})'
    )
    assert queries["$task"] == (
        'count by (job) (tahoe_governor_maintenance_objects_total{instance=~"$instance"})'
    )
    assert set(queries) == {"$instance", "$backup_job", "$task", "$peer"}
