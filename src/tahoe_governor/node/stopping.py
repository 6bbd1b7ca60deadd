"""The governed node's stop hooks: async work done when the node stops, before anything else stops.

The backup manager registers a hook that suspends its jobs and saves their
state. Hooks run while the node is still whole (Tubs connected, storage
broker up), one after another in the order they were added, each bounded by
a timeout so a stuck hook cannot keep the process from exiting. A hook that
fails or times out is logged and the next one still runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet import defer
from twisted.python.failure import Failure

from tahoe_governor.node.logs import node_log, node_log_failure
from tahoe_governor.throttle.reactor_clock import ReactorClock

#: Seconds a stop hook may take before the node stops without waiting for it.
DEFAULT_STOP_HOOK_TIMEOUT = 30.0

StopHook = Callable[[], "Awaitable[Any] | defer.Deferred[Any] | None"]


@attrs.frozen
class StopHookOutcome:
    """How one stop hook ended: ``ok``, ``failed`` or ``timed out``."""

    name: str
    outcome: str


class StopHooks:
    """An ordered list of named stop hooks, run once when the node stops."""

    def __init__(self, clock: ReactorClock, timeout: float = DEFAULT_STOP_HOOK_TIMEOUT) -> None:
        if not timeout > 0:
            raise ValueError(
                f"stop hook timeout must be a positive number of seconds, not {timeout!r}"
            )
        self._clock = clock
        self._timeout = timeout
        self._hooks: list[tuple[str, StopHook]] = []

    def add(self, name: str, hook: StopHook) -> None:
        """Run ``hook()`` at stop; it may return None, a Deferred or an awaitable."""
        if not callable(hook):
            raise TypeError(f"stop hook {name!r} must be callable, not {hook!r}")
        if any(existing == name for existing, _ in self._hooks):
            raise ValueError(f"a stop hook named {name!r} is already registered")
        self._hooks.append((name, hook))

    def remove(self, name: str) -> None:
        """Forget the hook called ``name`` (a KeyError if there is none)."""
        for i, (existing, _) in enumerate(self._hooks):
            if existing == name:
                del self._hooks[i]
                return
        raise KeyError(f"no stop hook named {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The hooks' names, in the order they will run."""
        return tuple(name for name, _ in self._hooks)

    async def run(self) -> list[StopHookOutcome]:
        """Run every hook in order; never raises. Returns each hook's outcome."""
        outcomes = []
        for name, hook in list(self._hooks):
            outcomes.append(StopHookOutcome(name, await self._run_one(name, hook)))
        return outcomes

    async def _run_one(self, name: str, hook: StopHook) -> str:
        d = defer.maybeDeferred(_call_async, hook)
        d.addTimeout(self._timeout, self._clock)
        try:
            await d
        except defer.TimeoutError:
            node_log(f"stop hook {name!r} did not finish within {self._timeout:g} s; going on")
            return "timed out"
        except Exception:
            node_log_failure(f"stop hook {name!r} failed", Failure())
            return "failed"
        node_log(f"stop hook {name!r} done")
        return "ok"


def _call_async(hook: StopHook) -> Any:
    result = hook()
    if isinstance(result, Awaitable) and not isinstance(result, defer.Deferred):
        return defer.ensureDeferred(result)  # type: ignore[arg-type]
    return result
