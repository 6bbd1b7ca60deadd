"""Stop hooks: run in order, one at a time, async, bounded by a timeout, failures contained."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task
from twisted.trial.unittest import TestCase

from tahoe_governor.node import StopHookOutcome, StopHooks


class StopHooksTests(TestCase):
    """Driven by task.Clock: no wall clock, no reactor."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.hooks = StopHooks(self.clock, timeout=30.0)
        self.calls: list[str] = []

    def test_in_order_one_at_a_time(self) -> None:
        """The second hook starts only when the first one's Deferred has fired."""
        first: defer.Deferred[None] = defer.Deferred()
        self.hooks.add("suspend jobs", lambda: self.calls.append("suspend") or first)
        self.hooks.add("save state", lambda: self.calls.append("save"))
        done = defer.ensureDeferred(self.hooks.run())
        self.assertEqual(self.calls, ["suspend"])
        self.assertNoResult(done)
        first.callback(None)
        self.assertEqual(self.calls, ["suspend", "save"])
        self.assertEqual(
            self.successResultOf(done),
            [StopHookOutcome("suspend jobs", "ok"), StopHookOutcome("save state", "ok")],
        )

    def test_coroutine_hook(self) -> None:
        """An ``async def`` hook is awaited like a Deferred."""
        gate: defer.Deferred[None] = defer.Deferred()

        async def hook() -> None:
            await gate
            self.calls.append("after gate")

        self.hooks.add("async", hook)
        done = defer.ensureDeferred(self.hooks.run())
        self.assertNoResult(done)
        gate.callback(None)
        self.assertEqual(self.successResultOf(done), [StopHookOutcome("async", "ok")])
        self.assertEqual(self.calls, ["after gate"])

    def test_failure_is_contained(self) -> None:
        """A hook that raises is reported as failed; the next hook still runs."""

        def broken() -> None:
            raise RuntimeError("disk full")

        self.hooks.add("broken", broken)
        self.hooks.add("next", lambda: self.calls.append("next"))
        outcomes = self.successResultOf(defer.ensureDeferred(self.hooks.run()))
        self.assertEqual([o.outcome for o in outcomes], ["failed", "ok"])
        self.assertEqual(self.calls, ["next"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_timeout(self) -> None:
        """A hook that never finishes is abandoned after the timeout; the next one runs."""
        self.hooks.add("stuck", lambda: defer.Deferred())
        self.hooks.add("next", lambda: self.calls.append("next"))
        done = defer.ensureDeferred(self.hooks.run())
        self.clock.advance(29.9)
        self.assertNoResult(done)
        self.clock.advance(0.1)
        outcomes = self.successResultOf(done)
        self.assertEqual([o.outcome for o in outcomes], ["timed out", "ok"])

    def test_names_and_removal(self) -> None:
        """Names list the run order; removing forgets a hook; no hooks is a quick no-op."""
        self.hooks.add("a", lambda: None)
        self.hooks.add("b", lambda: None)
        self.hooks.remove("a")
        self.assertEqual(self.hooks.names, ("b",))
        self.hooks.remove("b")
        self.assertEqual(self.successResultOf(defer.ensureDeferred(self.hooks.run())), [])


def test_bad_registrations_refused() -> None:
    """Duplicate names, non-callables, unknown removals and bad timeouts are clear errors."""
    hooks = StopHooks(task.Clock())
    hooks.add("save", lambda: None)
    with pytest.raises(ValueError, match="'save' is already registered"):
        hooks.add("save", lambda: None)
    with pytest.raises(TypeError, match="must be callable"):
        hooks.add("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no stop hook named 'y'"):
        hooks.remove("y")
    with pytest.raises(ValueError, match="positive number of seconds"):
        StopHooks(task.Clock(), timeout=0)
