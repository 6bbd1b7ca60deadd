"""The controls a running node offers its owner: what the private page and the command may ask.

Each method raises :class:`ControlError` for bad input and changes nothing
then. Limits are rates as written in tahoe.cfg (``"200kbps"``,
``"unlimited"``); they are kept as overrides until cleared.
"""

from __future__ import annotations

from typing import Literal, Protocol

from twisted.internet.defer import Deferred

from tahoe_governor.status.archives import JobArchives
from tahoe_governor.status.snapshots import GovernorStatus


class ControlError(Exception):
    """A control request that cannot be carried out; the message says why and
    what was expected (e.g. an unknown job, a malformed rate)."""


class GovernorControls(Protocol):
    """What the private page and the command may ask of the running node (see the module doc)."""

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

    def set_job_setting(self, job: str, setting: str, value: str | None) -> None:
        """Override ``job``'s ``allowed_times``, ``frequency`` or ``cpu`` with ``value`` as
        written in tahoe.cfg (``None``: back to tahoe.cfg's value)."""

    def reload(self) -> str:
        """Read tahoe.cfg again and run its jobs and limits from now on; what changed.
        A file ``check`` would refuse is refused with the same words."""

    def archives(self, job: str) -> Deferred[JobArchives]:
        """The archives of ``job`` on the grid, newest first, with their runs and what the
        job's retention rule does with each; :class:`ControlError` for an unknown job (raised
        at once), the grid's error if ``Archives/`` cannot be read."""
