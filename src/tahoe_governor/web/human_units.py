"""Numbers as people read them on the status pages and in ``tahoe-governor status``.

Byte counts and rates in SI units (``1.5 MB``, ``25 kB/s``), durations as the
two largest units (``5 h 12 min``), instants as a local time with how far away
they are (``Thu 22:00 CET, in 5 h 12 min``). Every function takes what it
needs, ``now`` included: none reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

_BYTE_UNITS = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3))


def format_bytes(count: float | None) -> str:
    """``1_500_000`` -> ``"1.5 MB"``; ``None`` -> ``"?"``."""
    if count is None:
        return "?"
    for unit, size in _BYTE_UNITS:
        if abs(count) >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} B"


def format_speed(bytes_per_second: float | None) -> str:
    """A rate or a cap in bytes/s: ``"25 kB/s"``; ``None`` or infinity -> ``"unlimited"``."""
    if bytes_per_second is None or math.isinf(bytes_per_second):
        return "unlimited"
    return format_bytes(bytes_per_second) + "/s"


def format_seconds(seconds: float | None) -> str:
    """``18720`` -> ``"5 h 12 min"``: the two largest non-zero units; ``None`` -> ``"?"``."""
    if seconds is None or math.isnan(seconds):
        return "?"
    if math.isinf(seconds):
        return "never"
    left = int(round(abs(seconds)))
    if left < 60:
        return f"{left} s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
        elif parts:
            break
    return " ".join(parts[:2])


def format_instant(instant: float | None, now: float, tz: tzinfo, never: str = "never") -> str:
    """``"Thu 2026-11-26 22:00 CET (in 5 h 12 min)"`` or ``never`` for ``None``."""
    if instant is None:
        return never
    moment = datetime.fromtimestamp(instant, tz)
    shown = moment.strftime("%a %Y-%m-%d %H:%M ") + (moment.tzname() or "")
    delta = instant - now
    if abs(delta) < 1:
        return f"{shown} (now)"
    relative = f"in {format_seconds(delta)}" if delta > 0 else f"{format_seconds(delta)} ago"
    return f"{shown} ({relative})"


def fraction_done(done: float, total: float | None) -> float | None:
    """``done / total`` clamped to [0, 1], ``None`` when the total is unknown or zero."""
    if total is None or total <= 0:
        return None
    return min(max(done / total, 0.0), 1.0)


def auto_note(auto_rate: float | None, queueing_delay: float | None) -> str:
    """`` (auto, queue 12 ms)`` after the cap of a peer under an automatic cap, else ``""``."""
    if auto_rate is None:
        return ""
    if queueing_delay is None:
        return " (auto, not measured yet)"
    return f" (auto, queue {queueing_delay * 1000:.0f} ms)"


def node_caps(link: Mapping[str, Any]) -> str:
    """``up 12.5 kB/s (100 kbps) (auto, queue 3 ms), down unlimited``: the node's caps
    from a link snapshot's fields (as a mapping: a ``LinkStatus`` or its JSON)."""
    return ", ".join(
        f"{d} {format_speed(link[f'node_limit_{d}'])}"
        + auto_note(link.get(f"node_auto_rate_{d}"), link.get(f"node_queueing_delay_{d}_seconds"))
        for d in ("up", "down"))
