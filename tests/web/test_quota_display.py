"""Quotas shown: both pages (HTML and JSON), ``/metrics`` and ``tahoe-governor status``
give each quota's usage, limit and reset time, and a held job's reason."""

from __future__ import annotations

import io

from tahoe_governor.cli.status import status_lines
from tahoe_governor.status import public_dict
from tahoe_governor.web.metrics import metric_families
from tests.web.controls_double import QUOTA_RESET, InMemoryControls, with_quotas
from tests.web.web_client import TOKEN, GovernorTestCase


def _samples(status) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(sample.name, tuple(sample.labels.values())): sample.value
            for family in metric_families(status) for sample in family.samples
            if sample.name.startswith("tahoe_governor_quota_")}


def test_metrics_give_usage_limit_and_reset_of_each_quota() -> None:
    """Three gauges per quota, labelled by scope, name and direction; none without quotas."""
    status = with_quotas(InMemoryControls()).status()
    assert _samples(status) == {
        ("tahoe_governor_quota_used_bytes", ("node", "", "up")): 12e9,
        ("tahoe_governor_quota_limit_bytes", ("node", "", "up")): 200e9,
        ("tahoe_governor_quota_reset_timestamp_seconds", ("node", "", "up")): QUOTA_RESET,
        ("tahoe_governor_quota_used_bytes", ("job", "mail", "up")): 50e9,
        ("tahoe_governor_quota_limit_bytes", ("job", "mail", "up")): 50e9,
        ("tahoe_governor_quota_reset_timestamp_seconds", ("job", "mail", "up")): QUOTA_RESET,
    }
    assert _samples(InMemoryControls().status()) == {}


def test_status_command_prints_the_quotas_and_why_a_job_is_held() -> None:
    """The report has a quota table (used of limit, period, reset) and a held job's reason."""
    snapshot = public_dict(with_quotas(InMemoryControls()).status())
    text = "\n".join(status_lines(snapshot))
    assert "mail: held: mail.quota = 50GB/month used up" in text
    assert "resets in 5 d" in text
    quota_up = next(line for line in text.splitlines() if line.startswith("quota.up"))
    for part in ("12 GB of 200 GB", "per month", "in 5 d"):
        assert part in quota_up
    assert "50 GB of 50 GB (used up)" in text
    plain = "\n".join(status_lines(public_dict(InMemoryControls().status())))
    assert "QUOTA" not in plain


class QuotaPageTests(GovernorTestCase):
    def setUp(self) -> None:
        super().setUp()
        with_quotas(self.controls)

    def test_public_page_shows_usage_limit_and_reset(self) -> None:
        """The public page's quota table and the held job's reason; its JSON has the counts."""
        text = self.get("/governor").text
        self.assertIn("<h2>Quotas</h2>", text)
        self.assertIn('data-quota="quota.up"', text)
        self.assertIn("12 GB of 200 GB", text)
        self.assertIn('data-quota="mail.quota" data-exhausted="true"', text)
        self.assertIn("50 GB of 50 GB (used up)", text)
        self.assertIn("mail.quota = 50GB/month used up", text)  # the job's Held row
        quotas = self.get("/governor?t=json").json()["quotas"]
        self.assertEqual([(q["directive"], q["used_bytes"], q["limit_bytes"], q["resets_at"])
                          for q in quotas],
                         [("quota.up", 12_000_000_000, 200_000_000_000, QUOTA_RESET),
                          ("mail.quota", 50_000_000_000, 50_000_000_000, QUOTA_RESET)])

    def test_private_page_shows_the_same(self) -> None:
        """The owner's page has the same quota table and reason."""
        text = self.get(f"/governor/{TOKEN}/").text
        self.assertIn("<h2>Quotas</h2>", text)
        self.assertIn("12 GB of 200 GB", text)
        self.assertIn("mail.quota = 50GB/month used up", text)


def test_check_reads_the_running_nodes_usage_or_else_the_saved_one(tmp_path) -> None:
    """check explains each quota: what it counts, the usage (the running node's when it
    answers, else the state database's), when it resets, and what a used-up one stops."""
    from tahoe_governor.cli.check import run_check
    from tahoe_governor.policy.quotas import QuotaKey, QuotaUsage, period_bounds
    from tahoe_governor.policy.state_db import StateDatabase, state_db_path
    from tahoe_governor.throttle.testing import FakeCounters
    from tests.cli.stub_node import StubNode, refused
    from tests.policy.test_check import AMS, CONFIGS, THURSDAY_MORNING, _nodedir

    cfg = (CONFIGS / "valid" / "story.cfg").read_text() + "quota.up = 200GB/month\n"
    nodedir = _nodedir(tmp_path, cfg)
    month_start = period_bounds("month", THURSDAY_MORNING, AMS)[0]
    with StateDatabase(state_db_path(str(nodedir))) as db:
        db.put_quota_usage({QuotaKey("node", "", "up"): QuotaUsage(200_000_000_000,
                                                                    month_start)}, 0.0)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(str(nodedir), THURSDAY_MORNING, AMS, out, err, FakeCounters(),
                     http=refused) == 0, err.getvalue()
    report = out.getvalue()
    assert "Quotas (1; usage as last saved in the state database" in report
    assert "  quota.up = 200GB/month" in report
    assert "counts:   every byte of the node's governed Foolscap traffic up" in report
    assert "used:     200000000000 of 200000000000 bytes (100.0%)" in report
    assert ("resets:   Tue 2026-12-01 00:00:00 CET (each month, at local midnight on the 1st)"
            in report)
    assert "USED UP:  its up limit is 0 and every job is held until the reset" in report
    assert ("now:             held until Tue 2026-12-01 00:00:00 CET: quota.up = 200GB/month "
            "used up (200000000000 of 200000000000 bytes)") in report
    assert "next start:      Tue 2026-12-01 00:00:00 CET" in report
    node = StubNode(nodedir)
    with_quotas(node.controls)
    out = io.StringIO()
    assert run_check(str(nodedir), THURSDAY_MORNING, AMS, out, err, FakeCounters(),
                     http=node.http) == 0, err.getvalue()
    assert "usage counted by the running node" in out.getvalue()
    # Not the saved 100 %: the running node's count (of another period) replaced it.
    assert "used:     0 of 200000000000 bytes" in out.getvalue()
