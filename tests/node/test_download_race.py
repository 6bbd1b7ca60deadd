"""A stopped segment fetcher of Tahoe's downloader ignores late shares (node/download_race)."""

from __future__ import annotations

from typing import Any

import pytest
from allmydata.immutable.downloader import fetcher

from tahoe_governor.node import download_race


class _Node:
    """The parts of Tahoe's ``_Node`` a SegmentFetcher touches here."""

    _si_prefix = "abcd"

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@pytest.fixture
def restore_fetcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tahoe's own ``add_shares`` for the test (a governed node run earlier in this process
    installed the fix), and whatever was there afterwards."""
    current = fetcher.SegmentFetcher.add_shares
    monkeypatch.setattr(fetcher.SegmentFetcher, "add_shares",
                        getattr(current, "__wrapped__", current))


def test_late_shares_for_a_stopped_fetcher(restore_fetcher: None) -> None:
    """Stock Tahoe raises AttributeError; once installed, the late shares are ignored, and
    a running fetcher still takes shares; installing twice wraps once."""
    stopped = fetcher.SegmentFetcher(_Node(), 0, 3, None)
    stopped.stop()
    with pytest.raises(AttributeError, match="_shares"):
        stopped.add_shares([])
    download_race.install()
    download_race.install()
    assert fetcher.SegmentFetcher.add_shares.__wrapped__.__name__ == "add_shares"
    assert not hasattr(fetcher.SegmentFetcher.add_shares.__wrapped__, "__wrapped__")
    stopped.add_shares([])
    running = fetcher.SegmentFetcher(_Node(), 0, 3, None)
    running.add_shares([])
    assert running._shares == []
    running.stop()  # its queued loop (an eventual-send) then returns at once
