"""The live policy: re-evaluates :func:`limits_at` whenever an input changes or time
reaches the next change, and tells its listeners.

The arithmetic stays in :mod:`tahoe_governor.policy.engine`; this service only
keeps the current inputs, asks the injected reactor clock
(:class:`~tahoe_governor.throttle.reactor_clock.ReactorClock`) for the time,
and schedules one ``callLater`` at the ``next_change`` of the last result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.application import service

from tahoe_governor.policy.config import Policy
from tahoe_governor.policy.engine import Limits, limits_at
from tahoe_governor.policy.job_settings import check_setting, parse_job_setting, with_job_settings
from tahoe_governor.policy.measurements import Measurements
from tahoe_governor.policy.overrides import LimitKey, Overrides
from tahoe_governor.policy.peers import KnownPeer
from tahoe_governor.policy.state_db import CAPACITY_ESTIMATE_KEYS, StateDatabase
from tahoe_governor.policy.units import parse_rate
from tahoe_governor.throttle.reactor_clock import DelayedCall, ReactorClock

Listener = Callable[[Limits], None]


class OverrideStore(Protocol):
    """Where overrides are kept across restarts (the state database provides this)."""

    def set_limit_override(self, key: LimitKey, rate_text: str | None, at: float) -> None: ...

    def set_paused(self, job: str, paused: bool, at: float) -> None: ...

    def set_job_setting(self, job: str, setting: str, text: str | None, at: float) -> None: ...


class LivePolicy(service.Service):
    """The effective limits of ``policy`` now, kept current.

    ``current`` is valid from construction. Listeners are called with the new
    :class:`Limits` whenever they differ from the previous ones (not when
    only the instant moved). While running (``startService``), the service
    re-evaluates at every window or schedule edge and when a job becomes due.
    """

    def __init__(
        self,
        reactor: ReactorClock,
        policy: Policy,
        *,
        overrides: Overrides = Overrides(),
        store: OverrideStore | None = None,
        last_completed: dict[str, float] | None = None,
    ) -> None:
        self._reactor = reactor
        self._policy = policy
        self._overrides = overrides
        self._effective = with_job_settings(policy, overrides.job_settings)
        self._store = store
        self._measurements = Measurements()
        self._running: frozenset[str] = frozenset()
        self._last_completed = dict(last_completed or {})
        self._known_peers: tuple[KnownPeer, ...] = ()
        self._listeners: list[Listener] = []
        self._timer: DelayedCall | None = None
        self.current = self._evaluate()

    @classmethod
    def from_database(
        cls, reactor: ReactorClock, policy: Policy, database: StateDatabase
    ) -> LivePolicy:
        """A live policy that starts from, and keeps its overrides in, ``database``:
        stored overrides, last completed runs, persisted capacity estimates and the
        quotas' usage (so a quota used up before a restart holds from the start)."""
        live = cls(
            reactor,
            policy,
            overrides=database.overrides(),
            store=database,
            last_completed=database.last_completed(),
        )
        capacity = {
            direction: (found[0] if (found := database.estimate(key)) is not None else None)
            for direction, key in CAPACITY_ESTIMATE_KEYS.items()
        }
        live.update_measurements(
            Measurements(capacity_up=capacity["up"], capacity_down=capacity["down"],
                         quota_usage=database.quota_usage())
        )
        return live

    # Inputs.

    def update_measurements(self, measurements: Measurements) -> None:
        self._measurements = measurements
        self.reevaluate()

    def set_override(self, key: LimitKey, rate_text: str | None) -> None:
        """Override one cap live with a rate as written in tahoe.cfg (``None`` clears it).

        A wrong rate raises ``ValueSyntaxError`` and changes nothing.
        """
        rate = None if rate_text is None else parse_rate(rate_text)
        if self._store is not None:
            self._store.set_limit_override(key, rate_text, self._reactor.seconds())
        self._overrides = self._overrides.with_limit(key, rate)
        self.reevaluate()

    def set_paused(self, job: str, paused: bool) -> None:
        self._policy.job(job)  # KeyError for a job not in the policy
        if self._store is not None:
            self._store.set_paused(job, paused, self._reactor.seconds())
        self._overrides = self._overrides.with_paused(job, paused)
        self.reevaluate()

    def set_job_setting(self, job: str, setting: str, text: str | None) -> None:
        """Override ``job``'s allowed times, frequency or CPU budget with ``text`` as written
        in tahoe.cfg (``None`` clears it). KeyError for an unknown job; ValueSyntaxError
        (or ValueError for an unknown setting) for a bad value, and nothing changes."""
        self._policy.job(job)
        if text is not None:
            parse_job_setting(setting, text, self._policy.tz)
        else:
            check_setting(setting)
        if self._store is not None:
            self._store.set_job_setting(job, setting, text, self._reactor.seconds())
        self._overrides = self._overrides.with_job_setting(job, setting, text)
        self._effective = with_job_settings(self._policy, self._overrides.job_settings)
        self.reevaluate()

    def set_running_jobs(self, names: Iterable[str]) -> None:
        self._running = frozenset(names)
        self.reevaluate()

    def set_last_completed(self, job: str, ended: float) -> None:
        self._last_completed[job] = ended
        self.reevaluate()

    def set_known_peers(self, peers: Iterable[KnownPeer]) -> None:
        self._known_peers = tuple(peers)
        self.reevaluate()

    def set_policy(self, policy: Policy) -> None:
        """Replace the parsed tahoe.cfg (live tuning); overrides stay."""
        self._policy = policy
        self._effective = with_job_settings(policy, self._overrides.job_settings)
        names = {j.name for j in policy.scheduled_jobs}
        self._running = frozenset(n for n in self._running if n in names)
        self.reevaluate()

    @property
    def overrides(self) -> Overrides:
        return self._overrides

    @property
    def policy(self) -> Policy:
        """The policy in force: tahoe.cfg with the job settings overridden live."""
        return self._effective

    @property
    def configured_policy(self) -> Policy:
        """The policy as tahoe.cfg says it, without live overrides."""
        return self._policy

    @property
    def known_peers(self) -> tuple[KnownPeer, ...]:
        """The storage servers the node knows now (as last set)."""
        return self._known_peers

    @property
    def last_completed(self) -> dict[str, float]:
        """Job name -> end of its last completed run (a copy)."""
        return dict(self._last_completed)

    # Outputs.

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(limits)`` on every change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def reevaluate(self) -> None:
        """Recompute now; notify listeners if anything changed; reschedule."""
        limits = self._evaluate()
        changed = limits != self.current
        self.current = limits
        if self.running:
            self._schedule()
        if changed:
            for listener in list(self._listeners):
                listener(limits)

    def _evaluate(self) -> Limits:
        return limits_at(
            self._effective,
            self._reactor.seconds(),
            self._overrides,
            self._measurements,
            self._running,
            self._last_completed,
            self._known_peers,
        )

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        change = self.current.next_change
        if change is not None:
            delay = max(0.0, change - self._reactor.seconds())
            self._timer = self._reactor.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.reevaluate()

    def startService(self) -> None:
        super().startService()
        self.reevaluate()

    def stopService(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return super().stopService()
