"""Every field of a fully populated status snapshot, walked: which reach the public views.

The snapshot is the metrics tests' realistic one with a unique marker planted
in every free-text field. The private fields are listed here by path, so a new
field is a decision: a test fails until it is declared private (with
``private_field``) or added to the public ones below. No private marker may
reach the public page, its JSON or ``/metrics``; every public one is in the JSON.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import attrs
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tahoe_governor.status import GovernorStatus, is_private, public_dict
from tahoe_governor.web.governor_tree import GovernorResource
from tahoe_governor.web.metrics import metrics_resource
from tests.web.status_examples import example_status
from tests.web.web_client import BASE, TOKEN, root_with_governor

PRIVATE_PATHS = {
    "jobs[].source",
    "jobs[].target",
    "jobs[].latest_snapshot_cap",
    "jobs[].last_failure_detail",
    "jobs[].allowed_times",
    "jobs[].settings_overridden",
    "jobs[].progress.private_current_paths",
    "overrides",
    "jobs[].recent_runs[].outcome",
    "jobs[].recent_runs[].detail",
    "jobs[].recent_runs[].started",
    "jobs[].recent_runs[].ended",
    "jobs[].recent_runs[].files_seen",
    "jobs[].recent_runs[].files_uploaded",
    "jobs[].recent_runs[].files_reused",
    "jobs[].recent_runs[].files_skipped",
    "jobs[].recent_runs[].files_failed",
    "jobs[].recent_runs[].bytes_uploaded",
    "jobs[].recent_runs",
    "recovery_sheet_reminder",
}
"""Fields that may hold a local path, a capability or the owner's settings."""

ENUMERATED = {"jobs[].state", "jobs[].progress.phase", "peers[].tubid"}
"""Text fields whose values come from a fixed set (kept valid, not marked)."""


def leaves(value: Any, path: str = "", private: bool = False) -> Iterator[tuple[str, bool, Any]]:
    """``(path, private, value)`` of every field below ``value``, an attrs instance."""
    for field in attrs.fields(type(value)):
        child = getattr(value, field.name)
        here = f"{path}{field.name}"
        hidden = private or is_private(field)
        items = child if isinstance(child, tuple) else (child,)
        suffix = "[]" if isinstance(child, tuple) else ""
        nested = [item for item in items if attrs.has(type(item))]
        if nested:
            for item in nested:
                yield from leaves(item, f"{here}{suffix}.", hidden)
        else:
            yield here, hidden, child


TEXT = (str, str | None)
TEXTS = (tuple[str, ...],)


def marked(value: Any, path: str = "") -> Any:
    """``value`` with each free-text field (or text tuple) replaced by a unique marker."""
    hints = typing.get_type_hints(type(value))
    changes = {}
    for field in attrs.fields(type(value)):
        child = getattr(value, field.name)
        here = f"{path}{field.name}"
        if isinstance(child, tuple) and child and attrs.has(type(child[0])):
            changes[field.name] = tuple(
                marked(item, f"{here}[].") for item in child)
        elif attrs.has(type(child)):
            changes[field.name] = marked(child, f"{here}.")
        elif here not in ENUMERATED and hints[field.name] in TEXT:
            changes[field.name] = f"MARK-{here}-{id(value)}"
        elif hints[field.name] in TEXTS:
            changes[field.name] = (f"MARK-{here}-{id(value)}",)
    return attrs.evolve(value, **changes)


def markers(snapshot: GovernorStatus, private: bool) -> set[str]:
    found = set()
    for _, hidden, value in leaves(snapshot):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and item.startswith("MARK-") and hidden == private:
                found.add(item)
    return found


class PrivacyWalkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.snapshot = marked(example_status())
        controls = _Snapshot(self.snapshot)
        resource = GovernorResource(controls, TOKEN, Clock())
        root = root_with_governor(resource)
        root.putChild(b"metrics", metrics_resource(controls.status))
        self.stub = StubTreq(root)

    def get(self, path: str) -> str:
        d = self.stub.get(BASE + path)
        self.stub.flush()
        body: bytes = self.successResultOf(self.stub.content(self.successResultOf(d)))
        return body.decode("utf-8")

    def test_the_private_fields_are_exactly_these(self) -> None:
        """Walking every field: the private ones are PRIVATE_PATHS, no more, no fewer."""
        private = {path for path, hidden, _ in leaves(self.snapshot) if hidden}
        self.assertEqual(private, PRIVATE_PATHS)

    def test_no_private_value_reaches_a_public_view(self) -> None:
        """No marker of a private field is on the public page, its JSON or /metrics."""
        secret = markers(self.snapshot, private=True)
        # 6 fields of 2 jobs, in flight, overrides, 2 runs' outcome and detail, the reminder
        self.assertEqual(len(secret), 6 * 2 + 1 + 1 + 2 * 2 + 1)
        for path in ("/governor", "/governor?t=json", "/metrics"):
            text = self.get(path)
            self.assertEqual([m for m in secret if m in text], [], path)

    def test_every_public_value_is_in_the_public_json(self) -> None:
        """Every public free-text field reaches the public JSON, and the JSON is the filter's."""
        public_json = self.get("/governor?t=json")
        self.assertEqual(json.loads(public_json), json.loads(json.dumps(
            public_dict(self.snapshot))))
        public = markers(self.snapshot, private=False)
        self.assertTrue(public)
        self.assertEqual([m for m in public if m not in public_json], [])


@attrs.frozen
class _Snapshot:
    """Controls that only show one snapshot (the public views ask nothing else)."""

    snapshot: GovernorStatus

    def status(self) -> GovernorStatus:
        return self.snapshot
