"""A test double for the shaper: records each Tub handed to ``install`` and the Tub's state then."""

from __future__ import annotations

import attrs
from foolscap.api import Tub


@attrs.frozen
class InstalledTub:
    """One ``install(tub)`` call and what the Tub looked like at that moment."""

    tub: Tub
    #: Whether the Tub had started (a shaper must get it before it starts).
    running: bool
    #: How many listeners it had (a shaper must get it before ``listenOn``).
    listeners: int
    #: The connection-hint types it had handlers for (the shaper wraps these).
    hint_types: tuple[str, ...]


class RecordingShaper:
    """Has ``install(tub)`` like ``tahoe_governor.throttle.Shaper``; shapes nothing."""

    def __init__(self) -> None:
        self.installed: list[InstalledTub] = []

    def install(self, tub: Tub) -> None:
        """Record ``tub`` and its state."""
        self.installed.append(
            InstalledTub(
                tub=tub,
                running=bool(tub.running),
                listeners=len(tub.getListeners()),
                hint_types=tuple(sorted(tub._connectionHandlers)),
            )
        )

    def saw(self, tub: Tub) -> bool:
        """Whether ``tub`` was installed (by identity)."""
        return any(record.tub is tub for record in self.installed)
