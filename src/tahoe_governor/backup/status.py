"""Status snapshots of a governed node, and the controls it offers.

What the web pages, ``/metrics`` and the command read: frozen values built at
one instant (:class:`GovernorStatus`), never live objects. Fields are split
into *public* ones — safe for the guessable ``/governor`` page and metrics:
no capabilities, no local paths, no tokens — and *private* ones, marked with
``metadata={"private": True}``; :func:`public_dict` drops them.

:class:`GovernorControls` is what the private page and the command may ask of
the running node. Every rate is bytes per second; ``UNLIMITED`` (``math.inf``)
means no cap; times are seconds since the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import attrs

from tahoe_governor.backup.progress import BackupProgress

PRIVATE = {"private": True}

JOB_STATES = ("done", "waiting", "running", "suspended", "paused", "failed")
"""Every user-visible job state (see docs/job-lifecycle.md)."""

FILE_OUTCOMES = ("uploaded", "reused", "skipped", "failed")
"""The outcomes counted per file (``tahoe_governor_job_files_total{outcome}``)."""


@attrs.frozen
class JobStatus:
    """One backup job at one instant."""

    name: str
    state: str
    """One of :data:`JOB_STATES`."""
    progress: BackupProgress | None
    """The run in progress, or the last run of this process; ``None`` if none."""
    files_total: Mapping[str, int]
    """Files per outcome (:data:`FILE_OUTCOMES`) over every run since the node started."""
    bytes_total: int
    """Bytes the job handed to the uploader since the node started."""
    limit_bytes_per_second: float
    """The job's upload cap in force (wire bytes/s), ``UNLIMITED`` for none."""
    limit_source: str
    """Which directive or rule set the cap (``b1.bandwidth``, ``override``, ...)."""
    cpu_budget: float | None
    """Share of one core allowed (0.25 = 25 %), ``None`` for no budget."""
    cpu_usage: float | None
    """Measured share of one core over 10 s, ``None`` when not measured."""
    last_success: float | None
    """End of the last completed run (from the state database), ``None`` if never."""
    next_start: float | None
    """When the job may next start (due and in its window); ``None``: paused or never."""
    window_end: float | None
    """End of the current allowed window while inside it; ``None`` if none or unending."""
    last_failure: str | None
    """What kind of failure ended the last attempt, while the job is ``failed``
    (words only: no path, no capability)."""
    retry_at: float | None
    """When a failed job is retried."""
    frequency_seconds: float
    source: str = attrs.field(default="", metadata=PRIVATE)
    """The local directory backed up (private)."""
    target: str = attrs.field(default="", metadata=PRIVATE)
    """``alias:path`` or directory cap the job backs up to (private)."""
    latest_snapshot_cap: str | None = attrs.field(default=None, metadata=PRIVATE)
    """Read-only cap of the last completed snapshot (private)."""
    last_failure_detail: str | None = attrs.field(default=None, metadata=PRIVATE)
    """The full error message of the last failure (private: it may name paths)."""


@attrs.frozen
class PeerStatus:
    """One storage server (remote Tub) the node has talked to."""

    tubid: str
    nickname: str
    sent_bytes: int
    received_bytes: int
    rate_up: float
    rate_down: float
    """Smoothed rates (bytes/s, EWMA with a 2 s half-life)."""
    limit_up: float
    limit_down: float
    """Caps in force for this peer (bytes/s), ``UNLIMITED`` for none."""
    queued_up: int
    queued_down: int
    """Bytes held back by the shaper, waiting for tokens."""
    waited_up_seconds: float
    waited_down_seconds: float
    """Total time bytes to/from this peer were held back."""
    connections: int
    connected: bool


@attrs.frozen
class LinkStatus:
    """The link the grid traffic crosses, as measured and configured."""

    rate_up: float
    rate_down: float
    """Interface rates (all traffic, bytes/s)."""
    own_up: float
    own_down: float
    """Our governed traffic (bytes/s)."""
    capacity_up: float | None
    capacity_down: float | None
    """Configured or estimated capacity (bytes/s); ``None`` when unknown."""
    busy_up: float | None
    busy_down: float | None
    """The ``busy.*`` threshold (bytes/s) when configured."""
    node_limit_up: float
    node_limit_down: float
    """Node-wide caps in force (bytes/s), ``UNLIMITED`` for none."""


@attrs.frozen
class GovernorStatus:
    """Everything a page, a scrape or ``tahoe-governor status`` shows, at instant ``at``."""

    at: float
    nickname: str
    jobs: tuple[JobStatus, ...]
    peers: tuple[PeerStatus, ...]
    link: LinkStatus
    overrides: tuple[str, ...] = ()
    """Overrides in force, as ``"peer dsl up = 100kbps"`` (shown on the private page)."""

    def job(self, name: str) -> JobStatus:
        for job in self.jobs:
            if job.name == name:
                return job
        raise KeyError(name)


def public_dict(value: Any) -> Any:
    """``value`` as JSON-ready data with every private field removed.

    ``UNLIMITED`` becomes ``None`` (JSON has no infinity).
    """
    return _as_data(value, include_private=False)


def private_dict(value: Any) -> Any:
    """``value`` as JSON-ready data, private fields included (private page only)."""
    return _as_data(value, include_private=True)


def _as_data(value: Any, include_private: bool) -> Any:
    if attrs.has(type(value)):
        out = {}
        for field in attrs.fields(type(value)):
            if field.metadata.get("private") and not include_private:
                continue
            out[field.name] = _as_data(getattr(value, field.name), include_private)
        return out
    if isinstance(value, Mapping):
        return {str(k): _as_data(v, include_private) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_as_data(v, include_private) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return None
    return value


class ControlError(Exception):
    """A control request that cannot be carried out; the message says why and
    what was expected (e.g. an unknown job, a malformed rate)."""


class GovernorControls(Protocol):
    """What the private page and the command may ask of the running node.

    Each method raises :class:`ControlError` for bad input and changes nothing
    then. Limits are rates as written in tahoe.cfg (``"200kbps"``,
    ``"unlimited"``); they are kept as overrides until cleared.
    """

    def status(self) -> GovernorStatus:
        """A snapshot now."""

    def pause(self, job: str) -> None:
        """Hold ``job`` in any window until :meth:`resume`."""

    def resume(self, job: str) -> None:
        """Undo :meth:`pause`."""

    def run_now(self, job: str, force: bool = False) -> None:
        """Start ``job`` regardless of its frequency; inside its windows unless ``force``."""

    def set_limit(
        self,
        scope: Literal["node", "peer", "job"],
        name: str,
        direction: Literal["up", "down"],
        rate: str | None,
    ) -> None:
        """Override a cap (``rate=None`` clears the override). ``name`` is the
        job name, the peer selector (TubID, server id or nickname), or "" for
        the node."""
