"""A job's runs and archives as the owner sees them: the history of runs, and ``Archives/`` listed.

:class:`RunRecord` is one run as the state database recorded it;
:class:`JobArchives` is the listing of a job's ``Archives/`` on the grid,
newest first, each entry joined with the run that made it (when this node
made it) and with what the job's retention rule (``bN.keep``) does with it.
Both are served to the owner only (the private page, its JSON, the command):
an archive listing tells when a target was written and what it holds, and a
run's detail may name local paths.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class RunRecord:
    """One run of a job, as recorded (instants in POSIX seconds)."""

    started: float
    ended: float | None
    """``None`` while running."""
    outcome: str
    """running, completed, failed, aborted or interrupted."""
    files_seen: int
    files_uploaded: int
    files_reused: int
    files_skipped: int
    files_failed: int
    bytes_uploaded: int
    detail: str | None
    """A completed run's archive name; a failed run's error message (may name paths)."""

    @property
    def duration_seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@attrs.frozen
class ArchiveEntry:
    """One entry of ``Archives/``."""

    name: str
    """As ``tahoe backup`` names archives: the UTC time it was linked (``2026-11-26_22:00:05Z``)."""
    instant: float | None
    """The time of the name; ``None`` for an entry not named so (linked by hand)."""
    latest: bool
    """True for the archive ``Latest`` points at."""
    run: RunRecord | None
    """The run of this node that made it, ``None`` when unknown (another program, another node)."""
    keep: bool | None
    """What the job's ``bN.keep`` does with it; ``None`` without a rule (every archive is kept)."""
    reasons: tuple[str, ...] = ()
    """Why the rule keeps or forgets it."""


@attrs.frozen
class JobArchives:
    """The archives of one job on the grid, newest first."""

    job: str
    keep_rule: str | None
    """The job's ``bN.keep`` as parsed, ``None`` without one."""
    archives: tuple[ArchiveEntry, ...]
