"""A maintenance task on the pages, /metrics and the command: progress and findings shown,
unrecoverable files counted in public and named only to the owner."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from treq.testing import StubTreq

from tahoe_governor.cli.maintenance import UNRECOVERABLE_EXIT, run_maintenance
from tahoe_governor.cli.status import run_status
from tahoe_governor.status import GovernorStatus, JobStatus, MaintenancePass
from tahoe_governor.web.governor_tree import GovernorResource
from tahoe_governor.web.metrics import GovernorCollector
from tests.cli.stub_node import StubNode
from tests.web.controls_double import NOW, InMemoryControls
from tests.web.web_client import TOKEN, GovernorTestCase, root_with_governor

LOST = ("Archives/2026-11-20_01:00:00Z/Pictures/2019/secret-holiday.jpg",)
TARGET = ("URI:DIR2-RO:qk3v6sbdiaaweu7grzrrtg7eqm:"
          "sjn5z7g7h4ohdkkjmwzyvlb3z6c4gbbvzy5kszq3k6rgxikvzmea")


def task_status() -> JobStatus:
    """Task ``m1`` mid-way through pass 4, one unrecoverable file found; its last pass."""
    run = MaintenancePass(
        phase="checking", suspended=False, elapsed_seconds=600.0, pass_number=4,
        directories_listed=30, directories_pending=0, objects_found=412, objects_checked=170,
        checked_this_run=120, verified=9, bytes_verified=52_000_000,
        results={"healthy": 166, "repaired": 3, "unrecoverable": 1}, expected_objects=410,
        eta_seconds=1200.0, private_unrecoverable=LOST)
    last = MaintenancePass(
        phase="finished", suspended=False, elapsed_seconds=3000.0, pass_number=3,
        directories_listed=30, directories_pending=0, objects_found=410, objects_checked=410,
        checked_this_run=410, verified=21, bytes_verified=99_000_000,
        results={"healthy": 408, "repaired": 2})
    return JobStatus(
        name="m1", state="running", progress=run,
        files_total={"healthy": 574, "repaired": 5, "unrecoverable": 1, "unhealthy": 0,
                     "failed": 0},
        bytes_total=151_000_000, limit_bytes_per_second=25_000.0,
        limit_source="m1.bandwidth", cpu_budget=0.1, cpu_usage=0.04,
        last_success=NOW - 86400 * 20, next_start=None, window_end=NOW + 3600,
        last_failure=None, retry_at=None, frequency_seconds=30 * 86400.0,
        target=TARGET, kind="maintenance", last_pass=last)


class WithTask(InMemoryControls):
    """The usual in-memory node, plus maintenance task ``m1``."""

    def status(self) -> GovernorStatus:
        status = super().status()
        return attrs.evolve(status, jobs=(*status.jobs, task_status()))


class TaskPagesTests(GovernorTestCase):
    """The pages show a task's pass; only the private one names what is lost."""

    def setUp(self) -> None:
        super().setUp()
        self.controls = WithTask()
        self.resource = GovernorResource(self.controls, TOKEN, self.clock)
        self.stub = StubTreq(root_with_governor(self.resource))

    def test_public_page_counts_the_unrecoverable_and_names_none(self) -> None:
        """The public page and its JSON give the pass's counts and the unrecoverable count,
        never the file's name nor the target cap."""
        page = self.get("/governor")
        assert page.code == 200
        assert "pass 4: 170 of about 410 objects checked (120 in this run)" in page.text
        assert "166 healthy, 3 repaired, 1 unrecoverable" in page.text
        assert "pass 3: 410 objects, 408 healthy, 2 repaired, 0 unrecoverable" in page.text
        public_json = self.get("/governor?t=json")
        for response in (page, public_json):
            assert "secret-holiday" not in response.text
            assert TARGET not in response.text
        (job,) = [j for j in public_json.json()["jobs"] if j["name"] == "m1"]
        assert job["kind"] == "maintenance"
        assert job["progress"]["results"]["unrecoverable"] == 1
        assert "private_unrecoverable" not in job["progress"]

    def test_private_page_names_the_unrecoverable_files(self) -> None:
        """The owner's page lists each unrecoverable file by its path in the archive."""
        page = self.get(f"/governor/{TOKEN}/")
        assert page.code == 200
        assert "1 unrecoverable (fewer than k shares on the grid" in page.text
        assert f"<code>{LOST[0]}</code>" in page.text
        (job,) = [j for j in self.get(f"/governor/{TOKEN}/?t=json").json()["jobs"]
                  if j["name"] == "m1"]
        assert job["progress"]["private_unrecoverable"] == list(LOST)


def test_metrics_give_the_pass_and_the_findings_without_names() -> None:
    """/metrics has the task's last success, per-result counters and pass gauges; the
    backup-only families have no sample for it; no name or cap is exported."""
    registry = CollectorRegistry()
    registry.register(GovernorCollector(lambda: WithTask().status()))
    text = generate_latest(registry).decode()
    last = [line for line in text.splitlines() if line.startswith(
        'tahoe_governor_maintenance_last_success_timestamp_seconds{job="m1"}')]
    assert [float(line.split()[-1]) for line in last] == [NOW - 86400 * 20]
    assert 'tahoe_governor_maintenance_objects_total{job="m1",result="repaired"} 5.0' in text
    assert 'tahoe_governor_maintenance_unrecoverable_objects{job="m1"} 1.0' in text
    assert 'tahoe_governor_maintenance_pass_checked_objects{job="m1"} 170.0' in text
    assert 'tahoe_governor_maintenance_last_pass_results{job="m1",result="healthy"} 408.0' in text
    assert 'tahoe_governor_job_state{job="m1",state="running"} 1.0' in text
    assert 'tahoe_governor_job_files_total{job="m1"' not in text
    assert 'tahoe_governor_job_run_phase{job="m1"' not in text
    assert "secret-holiday" not in text and TARGET not in text


def _stub_with_task(tmp_path: Path) -> StubNode:
    node = StubNode(tmp_path)
    task_node = WithTask()
    node.controls = task_node
    node.stub = StubTreq(root_with_governor(GovernorResource(task_node, TOKEN, node.clock)))
    return node


def test_the_command_names_the_unrecoverable_files_and_status_only_counts(
        tmp_path: Path) -> None:
    """``maintenance`` prints the pass, the last pass and each unrecoverable file by name,
    exiting 2; ``status`` (public) shows the task's row without any name."""
    node = _stub_with_task(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert run_maintenance(node.nodedir, None, out, err, http=node.http) == UNRECOVERABLE_EXIT
    text = out.getvalue()
    assert "m1: running" in text
    assert "pass 4 (checking): 170 of about 410 objects checked, 120 in this run" in text
    assert "last completed pass 3: 410 objects, 408 healthy, 2 repaired" in text
    assert f"unrecoverable (1; restore them from another copy):\n    {LOST[0]}\n" in text
    out = io.StringIO()
    assert run_status(node.nodedir, out, err, http=node.http) == 0
    shown = out.getvalue()
    assert "pass 4: 166 healthy, 3 repaired, 1 unrecoverable" in shown
    assert "170 of 410 checked" in shown
    assert "secret-holiday" not in shown


def test_the_command_refuses_an_unknown_task(tmp_path: Path) -> None:
    """A task name that is not configured is refused with the names that are."""
    node = _stub_with_task(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert run_maintenance(node.nodedir, "m2", out, err, http=node.http) == 1
    assert "unknown task 'm2': expected one of m1" in err.getvalue()


def test_the_command_without_tasks_says_so(tmp_path: Path) -> None:
    """A node without [maintenance] has nothing to report and exits 0."""
    node = StubNode(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert run_maintenance(node.nodedir, None, out, err, http=node.http) == 0
    assert "No maintenance tasks are configured" in out.getvalue()
