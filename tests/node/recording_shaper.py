"""Test helpers for the node layer: a shaper double that records each Tub it is given, temp dirs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import attrs
from foolscap.api import Tub
from twisted.trial.unittest import TestCase


def temp_dir(case: TestCase) -> Path:
    """A fresh directory outside the work tree, removed after ``case``.

    (trial's ``mktemp`` is relative to the current directory, which under
    pytest is the repository.)
    """
    path = Path(tempfile.mkdtemp(prefix="tahoe-governor-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


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
