"""The controls a governed node offers its owner, carried out on the scheduler and the live policy.

:class:`NodeControls` provides :class:`~tahoe_governor.status.GovernorControls`
for the private page and the command: pause, resume and run-now go to the
backup scheduler; a limit override goes to the live policy (which keeps it in
the state database). Bad input raises :class:`~tahoe_governor.status.ControlError`
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.overrides import SCOPES, LimitKey
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.status import ControlError, GovernorStatus


class NodeControls:
    """:class:`~tahoe_governor.status.GovernorControls` of one governed node.

    :param status: makes the node's status snapshot now.
    """

    def __init__(
        self,
        scheduler: BackupScheduler,
        live: LivePolicy,
        status: Callable[[], GovernorStatus],
    ) -> None:
        self._scheduler = scheduler
        self._live = live
        self.status = status

    def pause(self, job: str) -> None:
        self._scheduler.pause(job)

    def resume(self, job: str) -> None:
        self._scheduler.resume(job)

    def run_now(self, job: str, force: bool = False) -> None:
        self._scheduler.run_now(job, force)

    def set_limit(
        self,
        scope: Literal["node", "peer", "job"],
        name: str,
        direction: Literal["up", "down"],
        rate: str | None,
    ) -> None:
        if scope not in SCOPES:
            raise ControlError(f"limit scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if scope == "job":
            self._scheduler.runner(name)
        try:
            key = LimitKey(scope, "" if scope == "node" else name, direction)
            self._live.set_override(key, rate)
        except (ValueError, ValueSyntaxError) as e:
            raise ControlError(str(e)) from None
