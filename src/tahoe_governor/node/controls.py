"""The controls a governed node offers its owner, carried out on the scheduler and the live policy.

:class:`NodeControls` provides :class:`~tahoe_governor.status.GovernorControls`
for the private page and the command: pause, resume and run-now go to the
backup scheduler; a job's archives are read from the grid by
:class:`~tahoe_governor.node.owner_records.OwnerRecords`; a limit override
goes to the live policy (which keeps it in the state database). Bad input
raises :class:`~tahoe_governor.status.ControlError` and changes nothing: an
unknown job, a peer selector that names no known server and no
``peer.<selector>`` of tahoe.cfg, clearing an override that is not set, and an
upload rate below the floor of :mod:`tahoe_governor.policy.upload_floor`.
Each control carried out renews the status snapshot the readers share
(:class:`~.recent_snapshot.RecentSnapshot`), so the next page shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from twisted.internet.defer import Deferred

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.owner_records import OwnerRecords
from tahoe_governor.node.recent_snapshot import RecentSnapshot
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.overrides import SCOPES, LimitKey
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.policy.units import parse_rate
from tahoe_governor.policy.upload_floor import below_floor, peer_floor, shared_floor
from tahoe_governor.status import ControlError, GovernorStatus, JobArchives
from tahoe_governor.status.display_names import display_name


class NodeControls:
    """:class:`~tahoe_governor.status.GovernorControls` of one governed node.

    :param snapshots: the node's status snapshot, shared by its readers.
    """

    def __init__(
        self,
        scheduler: BackupScheduler,
        live: LivePolicy,
        snapshots: RecentSnapshot,
        reload: Callable[[], str] | None = None,
        records: OwnerRecords | None = None,
    ) -> None:
        self._records = records
        self._scheduler = scheduler
        self._live = live
        self._snapshots = snapshots
        self.status: Callable[[], GovernorStatus] = snapshots.status
        self._reload = reload

    def set_job_setting(self, job: str, setting: str, value: str | None) -> None:
        self._scheduler.runner(job)  # ControlError naming the known jobs
        if value is None and (job, setting) not in self._live.overrides.job_settings:
            raise ControlError(f"no override of job {display_name(job)!r} {setting} to clear: "
                               "it is tahoe.cfg's already")
        try:
            self._scheduler.set_job_setting(job, setting, value)
        except ValueError as e:  # ValueSyntaxError too: what was expected
            raise ControlError(f"job {display_name(job)!r}: {e}") from None
        self._snapshots.invalidate()

    def reload(self) -> str:
        if self._reload is None:
            raise ControlError("this node was not started from a node directory: "
                               "there is no tahoe.cfg to reload")
        try:
            return self._reload()
        finally:  # what the file changed (or the half of it applied) shows at once
            self._snapshots.invalidate()

    def pause(self, job: str) -> None:
        self._scheduler.pause(job)
        self._snapshots.invalidate()

    def resume(self, job: str) -> None:
        self._scheduler.resume(job)
        self._snapshots.invalidate()

    def run_now(self, job: str, force: bool = False) -> None:
        self._scheduler.run_now(job, force)
        self._snapshots.invalidate()

    def archives(self, job: str) -> Deferred[JobArchives]:
        runner = self._scheduler.runner(job)  # ControlError for an unknown job
        if self._records is None:
            raise ControlError("this node keeps no records of its archives")
        return self._records.archives(runner.job)

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
        except ValueError as e:
            raise ControlError(str(e)) from None
        if rate is None:
            if key not in self._live.overrides.limits:
                raise ControlError(f"no override of {display_name(key)} to clear "
                                   f"(overrides: {self._overridden()})")
        else:
            if scope == "peer" and key not in self._live.overrides.limits:
                self._check_peer(name)
            self._check_floor(key, rate)
        try:
            self._live.set_override(key, rate)
        except (ValueError, ValueSyntaxError) as e:
            raise ControlError(str(e)) from None
        self._snapshots.invalidate()

    def _overridden(self) -> str:
        return ", ".join(sorted(display_name(k) for k in self._live.overrides.limits)) or "none"

    def _check_peer(self, selector: str) -> None:
        """Refuse a selector that names no known server and no configured cap."""
        configured = [p.selector.text for p in self._live.policy.peers]
        known = self._live.known_peers
        names = {n for p in known for n in (p.tubid, p.server_id, p.nickname) if n}
        if selector in names or selector in configured:
            return
        listed = sorted(set(configured)) + sorted(
            f"{p.tubid} ({p.nickname})" if p.nickname else p.tubid for p in known)
        raise ControlError(
            f"unknown peer {display_name(selector)!r}: expected the TubID, server id or "
            "nickname of a storage server the node knows, or a selector of tahoe.cfg "
            f"[bandwidth] (known: {display_name(', '.join(listed)) or 'none yet'})"
        )

    def _check_floor(self, key: LimitKey, rate: str) -> None:
        """Refuse an upload rate too low for a segment to reach a server in time."""
        if key.direction != "up":
            return
        try:
            parsed = parse_rate(rate)
        except ValueSyntaxError:
            return  # the live policy refuses it, saying what a rate is
        encoding = self._live.policy.encoding
        shared = key.scope != "peer"
        floor = shared_floor(encoding) if shared else peer_floor(encoding)
        expected = below_floor(parsed, floor, encoding, shared)
        if expected is not None:
            raise ControlError(f"{display_name(key)} = {rate!r}: expected {expected}")
