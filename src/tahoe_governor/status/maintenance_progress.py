"""A maintenance pass's progress: the frozen snapshot the pages, metrics and commands read.

A maintenance task (``[maintenance]``) walks everything reachable from its
target once per *pass*, a directory or a file at a time; a pass may take
several runs (a run ends when its window closes, a pass when every object is
checked). :class:`MaintenancePass` counts the whole pass so far, including the
runs before this one, since the pass's state is in the state database.

Outcomes of one check, as recorded (:data:`CHECK_RESULTS`): ``healthy`` (every
share found), ``unhealthy`` (recoverable but short of shares; not repaired),
``repaired`` (was unhealthy, now healthy), ``unrecoverable`` (fewer than k
shares anywhere), ``failed`` (the check itself failed, e.g. no server answered).

Every field is public except ``private_unrecoverable``: the names of the
unrecoverable files are the owner's (the public page shows their count only).
"""

from __future__ import annotations

import attrs

from tahoe_governor.status.privacy import private_field

CHECK_RESULTS = ("healthy", "unhealthy", "repaired", "unrecoverable", "failed")
"""What one check of an object found (see the module doc)."""

MAINTENANCE_PHASES = ("preparing", "listing", "checking", "finished", "failed", "cancelled")
"""A run's phases: opening the target, listing directories, checking objects, then an end."""


@attrs.frozen(kw_only=True)
class MaintenancePass:
    """One moment of a maintenance pass (see the module doc)."""

    phase: str
    """One of :data:`MAINTENANCE_PHASES`."""
    suspended: bool
    """True while the task's throttle holds all work."""
    elapsed_seconds: float
    """Seconds since this run started (reactor time, suspensions included)."""
    pass_number: int
    """Which pass of the task this is (1 for the first); 0 before the first starts."""
    directories_listed: int
    """Directories listed so far in this pass (each once, however many paths reach it)."""
    directories_pending: int
    """Directories found but not listed yet."""
    objects_found: int
    """Distinct objects (files and directories, by storage index) found so far this pass."""
    objects_checked: int
    """Objects checked so far this pass (each at most once)."""
    checked_this_run: int
    """Of those, the ones this run checked (the others were checked in earlier windows)."""
    verified: int
    """Objects whose data was downloaded and verified this pass."""
    results: dict[str, int] = attrs.field(factory=dict)
    """This pass's checks per outcome (:data:`CHECK_RESULTS`)."""
    bytes_verified: int = 0
    """Plaintext bytes of the objects verified this pass."""
    expected_objects: int | None = None
    """Objects the pass is expected to check (the last pass's count, or more if more
    are found); ``None`` on a first pass until every directory is listed."""
    eta_seconds: float | None = None
    """Seconds until the pass ends at this run's pace; ``None`` without an estimate."""
    private_unrecoverable: tuple[str, ...] = private_field(default=())
    """Private: the paths (below the target) of the objects found unrecoverable."""

    def result(self, outcome: str) -> int:
        """This pass's count of one outcome."""
        return self.results.get(outcome, 0)

    @property
    def work_bytes(self) -> int:
        """Bytes of work done by this run's steps, the CPU budget's measure of work."""
        return self.bytes_verified

    def outcome_counts(self) -> dict[str, int]:
        """Objects per outcome (every one of :data:`CHECK_RESULTS`), for the totals."""
        return {outcome: self.result(outcome) for outcome in CHECK_RESULTS}

    def run_counts(self) -> dict[str, int]:
        """The counts the state database keeps for a run (its ``runs`` row)."""
        return {
            "files_seen": self.objects_found,
            "files_checked": self.objects_checked,
            "files_verified": self.verified,
            "files_unhealthy": self.result("unhealthy"),
            "files_repaired": self.result("repaired"),
            "files_unrecoverable": self.result("unrecoverable"),
            "files_failed": self.result("failed"),
            "bytes_verified": self.bytes_verified,
        }
