"""Estimating a link's capacity (bytes/s per direction) from its observed rate: ``auto``.

The estimate
------------
The interface's byte counts are summed into *samples* of ``sample_seconds``
(10 s): a sample is the link's mean rate over 10 s, which smooths away the
sub-second bursts a local interface shows above the real bottleneck's rate.
The last ``window_seconds`` (24 h: 8 640 samples per direction, 138 KB) are
kept in a :class:`~tahoe_governor.throttle.estimators.PercentileRate`, and
the capacity is a high percentile (99th) of them: a rate the link sustained
for at least 1 % of the window (15 minutes a day), so a single burst does not
count but a nightly backup or a large download does.

Before there is enough data
---------------------------
Until ``min_samples`` samples exist (default: 10 minutes' worth) the estimate
is the *start value*, or the percentile so far if that is higher (the link
has shown it carries more). Afterwards it is the percentile, but never below
``floor`` (default: the start value). The default start values are
:data:`DEFAULT_START_UP` (1 Mbit/s) and :data:`DEFAULT_START_DOWN` (8 Mbit/s),
a slow DSL line; a faster link is learnt as soon as it is used.

Why a floor: traffic that the governor itself limits to a share of the
estimate (``busy.up = 80%``, ``upstream = 30%``) never shows the link's full
rate, so without other traffic filling the link the estimate can only drift
down towards what the governor allows. The floor bounds that drift; a link
whose true capacity is below the floor must be configured as a number.

Persistence
-----------
:meth:`LinkCapacityEstimate.state` returns a plain, JSON-serialisable dict
(the samples as base64 of little-endian float32); :meth:`restore` loads one,
so a restart does not start blind. The caller stores it (the policy layer's
state database). The window counts samples, not wall time: time the program
was not running does not age the samples. A sample in progress is not saved.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from tahoe_governor.throttle.estimators import FloatArray, PercentileRate

DEFAULT_START_UP = 125_000.0
"""Start value of ``capacity.up = auto``: 1 Mbit/s, in bytes/s."""

DEFAULT_START_DOWN = 1_000_000.0
"""Start value of ``capacity.down = auto``: 8 Mbit/s, in bytes/s."""

STATE_VERSION = 1


class LinkCapacityEstimate:
    """Capacity (bytes/s) of each direction of a link, from per-tick byte counts.

    ``tick_seconds`` is the meters' tick; ``start`` the start value of each
    channel (bytes/s; by convention ``(up, down)``). See the module
    documentation for the estimate and its parameters.
    """

    def __init__(
        self,
        tick_seconds: float,
        start: Sequence[float] = (DEFAULT_START_UP, DEFAULT_START_DOWN),
        *,
        floor: Sequence[float] | None = None,
        sample_seconds: float = 10.0,
        window_seconds: float = 86_400.0,
        percentile: float = 99.0,
        min_samples: int | None = None,
    ) -> None:
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds must be > 0, got {tick_seconds!r}")
        self.sample_ticks = round(sample_seconds / tick_seconds)
        if self.sample_ticks < 1:
            raise ValueError(
                f"sample_seconds must be at least one tick ({tick_seconds} s), "
                f"got {sample_seconds!r}"
            )
        self.tick_seconds = float(tick_seconds)
        self.sample_seconds = self.sample_ticks * self.tick_seconds
        window_samples = round(window_seconds / self.sample_seconds)
        if window_samples < 1:
            raise ValueError(
                f"window_seconds must be at least one sample ({self.sample_seconds} s), "
                f"got {window_seconds!r}"
            )
        self.start = self._rates("start", start)
        self.channels = len(self.start)
        self.floor = self.start.copy() if floor is None else self._rates("floor", floor)
        if len(self.floor) != self.channels:
            raise ValueError(
                f"floor needs one rate per channel ({self.channels}), got {len(self.floor)}"
            )
        if min_samples is None:
            min_samples = max(1, round(600.0 / self.sample_seconds))
        if min_samples < 1:
            raise ValueError(f"min_samples must be >= 1, got {min_samples!r}")
        self.min_samples = int(min_samples)
        self._samples = PercentileRate(
            self.sample_seconds, window_samples, percentile, channels=self.channels
        )
        self._pending = np.zeros(self.channels)
        self._pending_ticks = 0
        self._cached: FloatArray | None = None

    @staticmethod
    def _rates(name: str, values: Sequence[float]) -> FloatArray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"{name} must be a sequence of rates (bytes/s), got {values!r}")
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ValueError(f"{name} rates must be finite and > 0 bytes/s, got {values!r}")
        return array

    @property
    def samples(self) -> int:
        """How many complete samples the window holds."""
        return self._samples.samples

    @property
    def window_samples(self) -> int:
        """How many samples the window holds at most."""
        return self._samples.window_ticks

    @property
    def percentile(self) -> float:
        """The percentile of the samples taken as the capacity."""
        return self._samples.percentile

    def update(self, counts: Sequence[float] | FloatArray) -> None:
        """Absorb one tick: ``counts[i]`` bytes passed on channel ``i``."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.channels,):
            raise ValueError(f"expected {self.channels} byte counts, got {counts.shape}")
        self._pending += counts
        self._pending_ticks += 1
        if self._pending_ticks == self.sample_ticks:
            self._samples.update(self._pending)
            self._pending[:] = 0.0
            self._pending_ticks = 0
            self._cached = None

    def capacities(self) -> FloatArray:
        """The estimated capacity (bytes/s) of every channel."""
        if self._cached is None:
            observed = self._samples.rates(self.channels)
            if self.samples < self.min_samples:
                self._cached = np.maximum(self.start, observed)
            else:
                self._cached = np.maximum(self.floor, observed)
        return self._cached.copy()

    def capacity(self, channel: int) -> float:
        """The estimated capacity (bytes/s) of one channel."""
        return float(self.capacities()[channel])

    def state(self) -> dict[str, Any]:
        """The samples as a JSON-serialisable dict, for :meth:`restore` after a restart."""
        history = self._samples.history(self.channels).astype("<f4")
        return {
            "version": STATE_VERSION,
            "sample_seconds": self.sample_seconds,
            "channels": self.channels,
            "samples": base64.b64encode(history.tobytes()).decode("ascii"),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the samples with those of a saved :meth:`state`.

        The saved samples must have the same sample length and channels; a
        longer saved history keeps only its newest samples. A malformed state
        raises ``ValueError`` saying what is wrong.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"capacity state must be a dict with version {STATE_VERSION}, got {state!r:.80}"
            )
        if state.get("sample_seconds") != self.sample_seconds:
            raise ValueError(
                f"capacity state has samples of {state.get('sample_seconds')!r} s, "
                f"this estimator takes samples of {self.sample_seconds} s"
            )
        if state.get("channels") != self.channels:
            raise ValueError(
                f"capacity state has {state.get('channels')!r} channels, expected {self.channels}"
            )
        try:
            raw = base64.b64decode(state["samples"], validate=True)
            history = np.frombuffer(raw, dtype="<f4").reshape(-1, self.channels)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"capacity state samples are not valid: {e}") from None
        fresh = PercentileRate(
            self.sample_seconds, self.window_samples, self.percentile, channels=self.channels
        )
        for row in history[-self.window_samples :]:
            fresh.update(row.astype(np.float64) * self.sample_seconds)
        self._samples = fresh
        self._cached = None
