"""Rate estimators over fixed ticks, vectorised across channels with numpy.

A *channel* is one byte stream being measured (a peer's upload direction, a
job, the interface). Bytes are counted per channel as they pass
(:meth:`ChannelCounts.add`); once per tick the counts of every channel are
handed, as one vector, to each estimator's ``update``, which updates all
channels in a handful of numpy operations. The tick length is fixed by the
caller (for instance a ``LoopingCall`` on the injected reactor every 0.25 s).

Estimators
----------
- :class:`EwmaRate`: exponentially weighted moving average of the per-tick rate
  (bytes/s) with a configurable half-life in seconds: after one half-life a step
  change in the true rate is half absorbed.
- :class:`WindowRate`: the exact mean rate (bytes/s) over the last ``window``
  ticks, from a ring buffer of integer counts; before the window has filled it
  averages over the ticks seen so far.
- :class:`PercentileRate`: a high percentile of the per-tick rates over a long
  window (ring buffer); used to estimate a link's capacity (``capacity = auto``).

Channels are dense integer indices; :class:`ChannelCounts` maps keys (TubIDs,
job names) to indices and grows every estimator registered with it. No module
here reads a clock.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _grown(array: npt.NDArray, channels: int, axis: int = -1) -> npt.NDArray:
    """A copy of ``array`` with its channel axis zero-padded to ``channels``."""
    have = array.shape[axis]
    if channels <= have:
        return array
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, max(channels, 2 * have) - have)
    return np.pad(array, pad)


def _check_positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


class EwmaRate:
    """Per-channel EWMA of the rate (bytes/s), one update per tick.

    ``rate = rate + alpha * (sample - rate)`` with ``alpha = 1 - 0.5 **
    (tick_seconds / half_life_seconds)``, where ``sample`` is the tick's byte
    count divided by ``tick_seconds``. A channel starts at 0 bytes/s.
    """

    def __init__(self, tick_seconds: float, half_life_seconds: float, channels: int = 0) -> None:
        self.tick_seconds = _check_positive("tick_seconds", tick_seconds)
        self.half_life_seconds = _check_positive("half_life_seconds", half_life_seconds)
        self.alpha = 1.0 - 0.5 ** (self.tick_seconds / self.half_life_seconds)
        self._rates: FloatArray = np.zeros(max(channels, 1))

    def ensure_channels(self, channels: int) -> None:
        """Make room for at least ``channels`` channels (new ones start at 0)."""
        self._rates = _grown(self._rates, channels)

    def update(self, counts: npt.ArrayLike) -> None:
        """Absorb one tick: ``counts[i]`` bytes passed on channel ``i``."""
        counts = np.asarray(counts)
        n = counts.shape[0]
        self.ensure_channels(n)
        rates = self._rates[:n]
        rates += self.alpha * (counts / self.tick_seconds - rates)

    def reset(self, channel: int, value: float = 0.0) -> None:
        """Set one channel's estimate (bytes/s), e.g. when a peer reconnects."""
        self.ensure_channels(channel + 1)
        self._rates[channel] = value

    def rates(self, channels: int) -> FloatArray:
        """The estimates (bytes/s) of channels ``0..channels-1`` (a view)."""
        self.ensure_channels(channels)
        return self._rates[:channels]

    def rate(self, channel: int) -> float:
        """The estimate (bytes/s) of one channel."""
        if channel >= self._rates.shape[0]:
            return 0.0
        return float(self._rates[channel])


class WindowRate:
    """Per-channel mean rate (bytes/s) over the last ``window_ticks`` ticks.

    Exact: counts are kept as integers in a ring buffer and a running integer
    sum, so the rate is ``sum(counts in window) / (ticks_in_window *
    tick_seconds)`` with no rounding drift, however long it runs.
    """

    def __init__(self, tick_seconds: float, window_ticks: int, channels: int = 0) -> None:
        self.tick_seconds = _check_positive("tick_seconds", tick_seconds)
        if window_ticks < 1:
            raise ValueError(f"window_ticks must be >= 1, got {window_ticks!r}")
        self.window_ticks = int(window_ticks)
        width = max(channels, 1)
        self._ring: IntArray = np.zeros((self.window_ticks, width), dtype=np.int64)
        self._sum: IntArray = np.zeros(width, dtype=np.int64)
        self._pos = 0
        self._filled = 0

    def ensure_channels(self, channels: int) -> None:
        """Make room for at least ``channels`` channels (new ones start empty)."""
        self._ring = _grown(self._ring, channels, axis=1)
        self._sum = _grown(self._sum, channels)

    def update(self, counts: npt.ArrayLike) -> None:
        """Absorb one tick: ``counts[i]`` whole bytes passed on channel ``i``."""
        counts = np.asarray(counts, dtype=np.int64)
        n = counts.shape[0]
        self.ensure_channels(n)
        row = self._ring[self._pos]
        self._sum -= row
        row[:] = 0
        row[:n] = counts
        self._sum += row
        self._pos = (self._pos + 1) % self.window_ticks
        self._filled = min(self._filled + 1, self.window_ticks)

    def window_seconds(self) -> float:
        """The span (seconds) the current rates are averaged over."""
        return max(self._filled, 1) * self.tick_seconds

    def totals(self, channels: int) -> IntArray:
        """Bytes per channel within the window."""
        self.ensure_channels(channels)
        return self._sum[:channels]

    def rates(self, channels: int) -> FloatArray:
        """Mean rate (bytes/s) of channels ``0..channels-1`` over the window."""
        return self.totals(channels) / self.window_seconds()

    def rate(self, channel: int) -> float:
        """Mean rate (bytes/s) of one channel over the window."""
        if channel >= self._sum.shape[0]:
            return 0.0
        return float(self._sum[channel]) / self.window_seconds()

    def peak(self, channel: int) -> int:
        """The largest one-tick count (bytes) of a channel within the window."""
        if channel >= self._sum.shape[0] or self._filled == 0:
            return 0
        return int(self._ring[:, channel].max())


class PercentileRate:
    """A high percentile of per-tick rates (bytes/s) over a long window.

    Stores one float per channel per tick in a ring buffer of
    ``window_ticks`` rows; :meth:`rates` computes the percentile on demand
    (the tick itself only writes a row). Ticks with no traffic count too, so
    the percentile should be high (95–99) to estimate what a link can carry.
    """

    def __init__(
        self, tick_seconds: float, window_ticks: int, percentile: float = 95.0, channels: int = 0
    ) -> None:
        self.tick_seconds = _check_positive("tick_seconds", tick_seconds)
        if window_ticks < 1:
            raise ValueError(f"window_ticks must be >= 1, got {window_ticks!r}")
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {percentile!r}")
        self.window_ticks = int(window_ticks)
        self.percentile = float(percentile)
        self._ring: FloatArray = np.zeros((self.window_ticks, max(channels, 1)))
        self._pos = 0
        self._filled = 0

    @property
    def samples(self) -> int:
        """How many ticks the window holds so far (up to ``window_ticks``)."""
        return self._filled

    def ensure_channels(self, channels: int) -> None:
        """Make room for at least ``channels`` channels."""
        self._ring = _grown(self._ring, channels, axis=1)

    def update(self, counts: npt.ArrayLike) -> None:
        """Absorb one tick: ``counts[i]`` bytes passed on channel ``i``."""
        counts = np.asarray(counts)
        n = counts.shape[0]
        self.ensure_channels(n)
        row = self._ring[self._pos]
        row[:] = 0.0
        np.divide(counts, self.tick_seconds, out=row[:n], casting="unsafe")
        self._pos = (self._pos + 1) % self.window_ticks
        self._filled = min(self._filled + 1, self.window_ticks)

    def history(self, channels: int) -> FloatArray:
        """The per-tick rates (bytes/s) in the window, oldest first: ``(samples, channels)``.

        Feeding each row times ``tick_seconds`` to a fresh estimator's
        :meth:`update` rebuilds this one (how saved state is restored).
        """
        self.ensure_channels(channels)
        rows = self._ring[: self._filled]
        if self._filled == self.window_ticks:
            rows = np.roll(self._ring, -self._pos, axis=0)
        return rows[:, :channels].copy()

    def rates(self, channels: int) -> FloatArray:
        """The percentile (bytes/s) of each channel's per-tick rates so far."""
        self.ensure_channels(channels)
        if self._filled == 0:
            return np.zeros(channels)
        return np.percentile(self._ring[: self._filled, :channels], self.percentile, axis=0)

    def rate(self, channel: int) -> float:
        """The percentile (bytes/s) of one channel's per-tick rates so far."""
        if self._filled == 0 or channel >= self._ring.shape[1]:
            return 0.0
        return float(np.percentile(self._ring[: self._filled, channel], self.percentile))


class ChannelCounts:
    """Byte counts per keyed channel for the current tick, and their estimators.

    ``add(key, n)`` is the hot path (a dict lookup and an integer add);
    ``tick()`` hands the counts to every estimator at once and starts a new
    tick. Totals since creation are kept per channel too.
    """

    def __init__(self, estimators: list[EwmaRate | WindowRate | PercentileRate]) -> None:
        self.estimators = list(estimators)
        self._index: dict[Hashable, int] = {}
        self._pending: IntArray = np.zeros(16, dtype=np.int64)
        self._totals: IntArray = np.zeros(16, dtype=np.int64)

    def channel(self, key: Hashable) -> int:
        """The index of ``key``'s channel, created on first use."""
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self._index)
            self._pending = _grown(self._pending, index + 1)
            self._totals = _grown(self._totals, index + 1)
            for estimator in self.estimators:
                estimator.ensure_channels(index + 1)
        return index

    def keys(self) -> list[Hashable]:
        """Every key seen, in channel order."""
        return list(self._index)

    def add(self, key: Hashable, nbytes: int) -> None:
        """Count ``nbytes`` bytes on ``key``'s channel in the current tick."""
        index = self.channel(key)  # may grow (replace) the array: look it up first
        self._pending[index] += nbytes

    def total(self, key: Hashable) -> int:
        """Bytes counted on ``key``'s channel since creation (current tick too)."""
        index = self._index.get(key)
        if index is None:
            return 0
        return int(self._totals[index] + self._pending[index])

    def tick(self) -> None:
        """End the current tick: update every estimator with its counts."""
        n = len(self._index)
        counts = self._pending[:n]
        for estimator in self.estimators:
            estimator.update(counts)
        self._totals[:n] += counts
        counts[:] = 0
