"""Helpers for backup tests without a reactor: blocking work on the spot, fired Deferreds."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

PARAMS = {"k": 3, "happy": 7, "n": 10, "max_segment_size": 128 * 1024}
"""Encoding parameters to give an uploadable, as Tahoe's uploader would."""
SECRET = b"c" * 16
"""A convergence secret."""


def run_now(f, *args) -> Deferred:
    """A run_blocking that runs on the spot (for tests that do not look at threads)."""
    return succeed(f(*args))


def result_of(d: Deferred) -> Any:
    """What a fired Deferred fired with (a Failure is taken, so it counts as handled)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out[0]
