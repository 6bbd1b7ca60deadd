"""The /metrics exposition: names, labels and values from a status snapshot,
nothing secret, and the twisted.web resource serving it in memory."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tahoe_governor.status import JOB_STATES, GovernorStatus
from tahoe_governor.status.display_names import display_name
from tahoe_governor.web.metrics import (
    METRIC_NAMES,
    METRICS,
    PREFIX,
    GovernorCollector,
    metric_families,
    metrics_resource,
)
from tests.web.status_examples import DSL_TUBID, FAST_TUBID, SECRETS, example_status

DESIGN_METRICS = {
    "tahoe_governor_peer_bytes_total": ("counter", {"peer", "nickname", "direction"}),
    "tahoe_governor_peer_rate_bytes_per_second": ("gauge", {"peer", "nickname", "direction"}),
    "tahoe_governor_peer_limit_bytes_per_second": ("gauge", {"peer", "nickname", "direction"}),
    "tahoe_governor_peer_queued_bytes": ("gauge", {"peer", "nickname", "direction"}),
    "tahoe_governor_job_state": ("gauge", {"job", "state"}),
    "tahoe_governor_job_files_total": ("counter", {"job", "outcome"}),
    "tahoe_governor_job_bytes_total": ("counter", {"job"}),
    "tahoe_governor_job_limit_bytes_per_second": ("gauge", {"job"}),
    "tahoe_governor_job_last_success_timestamp_seconds": ("gauge", {"job"}),
    "tahoe_governor_job_next_start_timestamp_seconds": ("gauge", {"job"}),
    "tahoe_governor_cpu_usage_ratio": ("gauge", {"job"}),
    "tahoe_governor_link_rate_bytes_per_second": ("gauge", {"direction"}),
    "tahoe_governor_link_capacity_bytes_per_second": ("gauge", {"direction"}),
}
"""The metric set DESIGN.md fixes ("Web, metrics, command"): name -> (type, labels)."""


def scrape(status: GovernorStatus) -> str:
    """The Prometheus text exposition of ``status`` from a fresh registry."""
    registry = CollectorRegistry()
    registry.register(GovernorCollector(lambda: status))
    return generate_latest(registry).decode("utf-8")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and label set."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed[(PREFIX + name, frozenset(labels.items()))]


def has(parsed: dict, name: str, **labels: str) -> bool:
    return (PREFIX + name, frozenset(labels.items())) in parsed


def test_design_metrics_have_exactly_their_names_types_and_labels() -> None:
    """Every metric DESIGN.md names is exported with that exact name, type and label set."""
    families = {f.name: f for f in text_string_to_metric_families(scrape(example_status()))}
    for name, (kind, labels) in DESIGN_METRICS.items():
        family_name = name.removesuffix("_total") if kind == "counter" else name
        family = families[family_name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no sample"
        for sample in family.samples:
            assert sample.name == name
            assert set(sample.labels) == labels, (name, sample.labels)


def test_every_metric_follows_the_naming_conventions() -> None:
    """One prefix, unique names, ``_total`` exactly on counters, a help text each."""
    assert len(METRIC_NAMES) == len(METRICS)
    for spec in METRICS:
        assert spec.name.startswith(PREFIX)
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        assert spec.help


def test_peer_values_per_direction() -> None:
    """Peer counters and gauges carry the snapshot's numbers, labelled by TubID,
    nickname and direction."""
    parsed = samples(scrape(example_status(elapsed=100.0)))
    up = {"peer": DSL_TUBID, "nickname": "parents-dsl", "direction": "up"}
    down = {**up, "direction": "down"}
    assert value(parsed, "peer_bytes_total", **up) == 2_400_000
    assert value(parsed, "peer_bytes_total", **down) == 80_000
    assert value(parsed, "peer_rate_bytes_per_second", **up) == 24_100
    assert value(parsed, "peer_limit_bytes_per_second", **up) == 25_000
    assert value(parsed, "peer_queued_bytes", **up) == 16_384
    assert value(parsed, "peer_wait_seconds_total", **up) == pytest.approx(60.0)
    assert value(parsed, "peer_connections", peer=FAST_TUBID, nickname="office") == 2
    assert value(parsed, "peer_connected", peer=FAST_TUBID, nickname="office") == 1


def test_unlimited_and_unknown_values_have_no_sample() -> None:
    """Unlimited caps, unknown capacity, an unset busy threshold, an unset CPU
    budget and a job never completed or not scheduled export no sample (not
    +Inf, not 0)."""
    parsed = samples(scrape(example_status()))
    dsl_down = {"peer": DSL_TUBID, "nickname": "parents-dsl", "direction": "down"}
    office_up = {"peer": FAST_TUBID, "nickname": "office", "direction": "up"}
    assert not has(parsed, "peer_limit_bytes_per_second", **dsl_down)
    assert not has(parsed, "peer_limit_bytes_per_second", **office_up)
    assert has(parsed, "peer_limit_bytes_per_second", **{**office_up, "direction": "down"})
    assert not has(parsed, "node_limit_bytes_per_second", direction="down")
    assert value(parsed, "node_limit_bytes_per_second", direction="up") == 75_000
    assert not has(parsed, "link_busy_threshold_bytes_per_second", direction="down")
    assert value(parsed, "link_busy_threshold_bytes_per_second", direction="up") == 100_000
    for name in (
        "job_limit_bytes_per_second",
        "job_last_success_timestamp_seconds",
        "job_next_start_timestamp_seconds",
        "cpu_usage_ratio",
        "cpu_budget_ratio",
        "job_run_eta_seconds",
    ):
        assert not has(parsed, name, job="documents"), name
        assert has(parsed, name, job="photos"), name
    assert not any(v in (float("inf"), float("-inf")) for v in parsed.values())


def test_job_state_is_one_hot_over_every_state() -> None:
    """Each job has a sample for every state: 1 for its current state, 0 for the rest."""
    parsed = samples(scrape(example_status()))
    for job, current in (("photos", "running"), ("documents", "paused")):
        for state in JOB_STATES:
            assert value(parsed, "job_state", job=job, state=state) == (state == current)


def test_job_counts_progress_and_budgets() -> None:
    """Files per outcome (missing outcomes are 0), bytes, the cap and its source,
    times, CPU against budget, and the run's progress, estimate and ETA."""
    status = example_status(elapsed=200.0)
    parsed = samples(scrape(status))
    assert value(parsed, "job_files_total", job="documents", outcome="uploaded") == 12
    assert value(parsed, "job_files_total", job="documents", outcome="failed") == 0
    assert value(parsed, "job_bytes_total", job="photos") == 5_005_000_000
    assert value(parsed, "job_limit_bytes_per_second", job="photos") == 25_000
    assert value(parsed, "job_limit_source", job="photos", source="photos.bandwidth") == 1
    assert value(parsed, "job_next_start_timestamp_seconds", job="photos") == status.at
    assert value(parsed, "cpu_usage_ratio", job="photos") == pytest.approx(0.21)
    assert value(parsed, "cpu_budget_ratio", job="photos") == pytest.approx(0.25)
    run = status.job("photos").progress
    assert run is not None and run.eta_seconds is not None
    assert value(parsed, "job_run_files_seen", job="photos") == run.files_seen
    assert value(parsed, "job_run_files", job="photos", outcome="skipped") == 3
    assert value(parsed, "job_run_done_bytes", job="photos") == run.bytes_done
    assert value(parsed, "job_run_estimated_bytes", job="photos") == 2_000_000_000
    assert value(parsed, "job_run_eta_seconds", job="photos") == pytest.approx(run.eta_seconds)
    assert value(parsed, "job_run_phase", job="photos", phase="walking") == 1
    assert value(parsed, "job_run_skipped_entries", job="photos", reason="symlink") == 2
    assert not has(parsed, "job_run_files_seen", job="documents")


def test_link_and_snapshot_values() -> None:
    """Link rates, own rate, capacity, the snapshot time and the override count."""
    status = example_status()
    parsed = samples(scrape(status))
    assert value(parsed, "link_rate_bytes_per_second", direction="up") == 110_000
    assert value(parsed, "link_own_rate_bytes_per_second", direction="down") == 2_710
    assert value(parsed, "link_capacity_bytes_per_second", direction="down") == 1_000_000
    assert value(parsed, "status_timestamp_seconds") == status.at
    assert value(parsed, "overrides") == 1


def test_no_capability_path_or_token_in_any_format() -> None:
    """The caps, paths, alias and token planted in private fields (and in an
    override's text) appear nowhere in the text or OpenMetrics exposition."""
    status = example_status()
    registry = CollectorRegistry()
    registry.register(GovernorCollector(lambda: status))
    for text in (generate_latest(registry), generate_openmetrics(registry)):
        decoded = text.decode("utf-8")
        for secret in SECRETS:
            assert secret not in decoded
        assert "URI:" not in decoded
        assert "/home/" not in decoded


@given(secret=st.text(min_size=1).map(lambda s: "SECRET\u2603" + s))
def test_no_private_field_value_is_ever_exported(secret: str) -> None:
    """Whatever a private field holds, no part of the exposition carries it."""
    status = example_status()
    jobs = tuple(
        attrs.evolve(job, source=secret, target=secret, latest_snapshot_cap=secret)
        for job in status.jobs
    )
    progress = jobs[0].progress
    assert progress is not None
    jobs = (attrs.evolve(jobs[0], progress=attrs.evolve(progress, private_current_paths=(secret,))),
            *jobs[1:])
    text = scrape(attrs.evolve(status, jobs=jobs, overrides=(secret,)))
    assert "SECRET" not in text
    assert "\u2603" not in text


def test_registering_does_not_call_the_source_and_each_scrape_does() -> None:
    """describe() names the families without a snapshot; every collect() takes a fresh one."""
    calls = []

    def source() -> GovernorStatus:
        calls.append(None)
        return example_status(elapsed=float(len(calls)))

    registry = CollectorRegistry()
    registry.register(GovernorCollector(source))
    assert calls == []
    first = samples(generate_latest(registry).decode())
    second = samples(generate_latest(registry).decode())
    assert len(calls) == 2
    labels = {"peer": DSL_TUBID, "nickname": "parents-dsl", "direction": "up"}
    assert value(first, "peer_bytes_total", **labels) == 24_000
    assert value(second, "peer_bytes_total", **labels) == 48_000


def test_families_of_an_empty_node() -> None:
    """A node with no jobs or peers still exports the link and snapshot metrics."""
    status = attrs.evolve(example_status(), jobs=(), peers=(), overrides=())
    names = {f.name for f in metric_families(status) if f.samples}
    assert names == {
        "tahoe_governor_status_timestamp_seconds",
        "tahoe_governor_overrides",
        "tahoe_governor_node_limit_bytes_per_second",
        "tahoe_governor_link_rate_bytes_per_second",
        "tahoe_governor_link_own_rate_bytes_per_second",
        "tahoe_governor_link_capacity_bytes_per_second",
        "tahoe_governor_link_busy_threshold_bytes_per_second",
    }


class MetricsResourceTests(SynchronousTestCase):
    """The /metrics resource driven in memory with StubTreq."""

    def get(self, source, headers=None):
        treq = StubTreq(metrics_resource(source))
        response = self.successResultOf(
            treq.get("http://node.example/metrics", headers=headers or {})
        )
        body = self.successResultOf(response.content())
        return response, body.decode("utf-8")

    def test_text_exposition(self) -> None:
        """A plain GET gets Prometheus text format 0.0.4 with the governor's metrics."""
        response, body = self.get(example_status)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"),
            [b"text/plain; version=0.0.4; charset=utf-8"],
        )
        parsed = samples(body)
        self.assertEqual(value(parsed, "job_state", job="photos", state="running"), 1)
        for secret in SECRETS:
            self.assertNotIn(secret, body)

    def test_openmetrics_when_asked(self) -> None:
        """A scraper asking for OpenMetrics (as Prometheus does) gets it."""
        response, body = self.get(
            example_status, {b"accept": [b"application/openmetrics-text; version=1.0.0"]}
        )
        self.assertEqual(response.code, 200)
        content_type = response.headers.getRawHeaders(b"content-type")[0]
        self.assertTrue(content_type.startswith(b"application/openmetrics-text"), content_type)
        self.assertTrue(body.endswith("# EOF\n"))
        self.assertIn("tahoe_governor_peer_bytes_total{", body)

    def test_failing_source_is_a_500_without_details(self) -> None:
        """A source that raises gives a 500 whose body names no internals; the
        failure goes to the log."""

        def broken() -> GovernorStatus:
            raise RuntimeError("state database at /home/alice/.tahoe is locked")

        response, body = self.get(broken)
        self.assertEqual(response.code, 500)
        self.assertNotIn("/home/alice", body)
        self.assertIn("failed", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_each_resource_has_its_own_registry(self) -> None:
        """Two resources never share a registry: each serves its own source."""
        other = attrs.evolve(example_status(), jobs=())
        _, first = self.get(example_status)
        _, second = self.get(lambda: other)
        self.assertIn('job="photos"', first)
        self.assertNotIn('job="photos"', second)


@given(nickname=st.text(), job=st.text(min_size=1))
def test_any_nickname_and_job_name_survive_the_exposition(nickname: str, job: str) -> None:
    """Nicknames are chosen by the remote server and job names by the user:
    quotes, backslashes, newlines and any Unicode cannot forge a sample; a job
    name comes back unchanged, a nickname as the displays show it (escaped)."""
    status = example_status()
    peer = attrs.evolve(status.peers[0], nickname=nickname)
    status = attrs.evolve(
        status, peers=(peer,), jobs=(attrs.evolve(status.jobs[0], name=job),)
    )
    families = list(text_string_to_metric_families(scrape(status)))
    labels = [s.labels for f in families for s in f.samples]
    nicknames = {each["nickname"] for each in labels if "nickname" in each}
    jobs = {each["job"] for each in labels if "job" in each}
    assert nicknames == {display_name(nickname)}
    assert jobs == {job}
    assert {f.name for f in families} <= {spec.name.removesuffix("_total") for spec in METRICS}
