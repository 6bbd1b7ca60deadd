"""The rest of the machine's traffic on the link (bytes/s), the input of yielding.

With ``busy.up = 80%`` the governed traffic gets what other traffic leaves of
80 % of the capacity: ``limit = max(floor, 0.8 * capacity - other)`` (the
rule belongs to the policy engine). ``other`` is estimated here, per tick and
per direction, as the interface's bytes minus our own governed bytes in the
same tick (never below zero), smoothed asymmetrically:

- *fast attack*: when the raw value is above the estimate, the estimate moves
  towards it with a half-life of ``attack_half_life`` (0.25 s), so the
  governed traffic makes room within about a second when other traffic
  appears;
- *slow release*: when the raw value is below, with a half-life of
  ``release_half_life`` (1 s), so a pause of a few hundred milliseconds in a
  bursty flow (a web page loading) does not let the governed traffic surge
  into it, while a flow that has stopped is released within a few seconds.

The asymmetry errs on the side of the other traffic: noise raises the
estimate a little more than it lowers it, so the governed rate sits slightly
low rather than pushing the link above the threshold.

Our own bytes are counted where the governed connections write them, before
TCP/IP headers; ``overhead`` (a fraction, default 0) adds the headers back
(about 0.045 for full 1500-byte frames). Left at 0, our headers count as
other traffic, which only makes the governed share a few per cent smaller.
Acknowledgements of our uploads arrive as download bytes and count as other
download traffic in the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tahoe_governor.throttle.estimators import FloatArray

DEFAULT_ATTACK_HALF_LIFE = 0.25
"""Seconds for the estimate to absorb half of a rise in other traffic."""

DEFAULT_RELEASE_HALF_LIFE = 1.0
"""Seconds for the estimate to absorb half of a fall in other traffic."""


def _alpha(tick_seconds: float, half_life_seconds: float, name: str) -> float:
    if not half_life_seconds > 0:
        raise ValueError(f"{name} must be > 0 seconds, got {half_life_seconds!r}")
    return 1.0 - 0.5 ** (tick_seconds / half_life_seconds)


class OtherTrafficEstimate:
    """Smoothed rate (bytes/s) of traffic that is not ours, per channel (up, down).

    Call :meth:`update` once per tick with the interface's and our own byte
    counts of that tick; read :meth:`rates`. Starts at 0 bytes/s.
    """

    def __init__(
        self,
        tick_seconds: float,
        attack_half_life: float = DEFAULT_ATTACK_HALF_LIFE,
        release_half_life: float = DEFAULT_RELEASE_HALF_LIFE,
        overhead: float = 0.0,
        channels: int = 2,
    ) -> None:
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds must be > 0, got {tick_seconds!r}")
        if not 0.0 <= overhead < 1.0:
            raise ValueError(f"overhead must be a fraction within [0, 1), got {overhead!r}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels!r}")
        self.tick_seconds = float(tick_seconds)
        self.attack_alpha = _alpha(tick_seconds, attack_half_life, "attack_half_life")
        self.release_alpha = _alpha(tick_seconds, release_half_life, "release_half_life")
        self.overhead = float(overhead)
        self.channels = channels
        self._rates: FloatArray = np.zeros(channels)
        self._raw: FloatArray = np.zeros(channels)

    def update(
        self,
        interface_bytes: Sequence[float] | npt.NDArray[np.generic],
        own_bytes: Sequence[float] | npt.NDArray[np.generic],
    ) -> None:
        """Absorb one tick: bytes the interface counted and bytes we sent, per channel."""
        link = np.asarray(interface_bytes, dtype=np.float64)
        ours = np.asarray(own_bytes, dtype=np.float64)
        if link.shape != (self.channels,) or ours.shape != (self.channels,):
            raise ValueError(
                f"expected {self.channels} interface and own byte counts, "
                f"got shapes {link.shape} and {ours.shape}"
            )
        raw = np.maximum(link - ours * (1.0 + self.overhead), 0.0) / self.tick_seconds
        alpha = np.where(raw > self._rates, self.attack_alpha, self.release_alpha)
        self._rates += alpha * (raw - self._rates)
        self._raw = raw

    def rates(self) -> FloatArray:
        """The smoothed other traffic (bytes/s) of every channel (a copy)."""
        return self._rates.copy()

    def rate(self, channel: int) -> float:
        """The smoothed other traffic (bytes/s) of one channel."""
        return float(self._rates[channel])

    def raw_rates(self) -> FloatArray:
        """Last tick's unsmoothed other traffic (bytes/s), for display and tests."""
        return self._raw.copy()
