"""Tahoe's events below OPERATIONAL are not made in a governed node (node/noisy_logs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from allmydata.util import log as tahoe_log
from foolscap.logging import log as foolscap_log

from tahoe_governor.node import noisy_logs


@pytest.fixture
def stock_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Tahoe's and Foolscap's logging as they ship (a governed node built earlier in this
    process installed the change), restored afterwards; the events made meanwhile."""
    for owner, name in ((tahoe_log, "msg"), (tahoe_log.LogMixin, "log"),
                        (tahoe_log.PrefixingLogMixin, "log")):
        current = owner.__dict__[name]
        monkeypatch.setattr(owner, name, getattr(current, "__wrapped__", current))
    logger = foolscap_log.theLogger
    monkeypatch.setattr(logger, "thresholds", {})
    events: list[dict[str, Any]] = []
    logger.addImmediateObserver(events.append)
    try:
        yield events
    finally:
        logger.removeImmediateObserver(events.append)


class _Watched(list[int]):
    """An argument that notes when Tahoe's ``bytes_to_unicode`` walks it."""

    walked = 0

    def __iter__(self) -> Iterator[int]:
        type(self).walked += 1
        return super().__iter__()


class _Logged(tahoe_log.PrefixingLogMixin):
    def __init__(self) -> None:
        super().__init__(facility="tahoe_governor.test", prefix="t")


def _messages(events: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("message") or e.get("format")) for e in events]


def test_only_noisy_events_are_not_made(stock_logging: list[dict[str, Any]]) -> None:
    """Stock Tahoe makes a NOISY event (and converts its arguments first); once installed,
    NOISY events from ``log.msg`` and the log mixins are dropped before any conversion, and
    OPERATIONAL, default-level and UNUSUAL ones are made as before; installing twice wraps
    once."""
    tahoe_log.msg("noisy before", level=tahoe_log.NOISY)
    assert _messages(stock_logging) == ["noisy before"]
    tahoe_log.msg("noisy, converted", level=tahoe_log.NOISY, data=_Watched([1]))
    assert _Watched.walked == 1
    stock_logging.clear()

    noisy_logs.install()
    noisy_logs.install()
    assert tahoe_log.msg("noisy", level=tahoe_log.NOISY, data=_Watched([1])) is None
    assert _Watched.walked == 1
    tahoe_log.msg("noisy after", level=tahoe_log.NOISY)
    logged = _Logged()
    logged.log("mixin noisy", level=tahoe_log.NOISY)
    tahoe_log.msg("operational", level=tahoe_log.OPERATIONAL)
    tahoe_log.msg("no level")
    logged.log("mixin unusual", level=tahoe_log.UNUSUAL)
    assert _messages(stock_logging) == ["operational", "no level",
                                        f"{logged._prefix}mixin unusual"]
    assert not hasattr(tahoe_log.msg.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
