"""The lowest upload cap at which one segment still reaches a storage server before it gives up.

A Tahoe storage server aborts an upload that receives nothing for 30 minutes.
Tahoe sends a file segment by segment (:data:`MAX_SEGMENT_SIZE`, Tahoe's
default ``max_segment_size``); each of the ``N`` servers receives one block of
every segment, ``ceil(segment / k)`` bytes. A cap so low that a block cannot
pass within :data:`IDLE_WINDOW_SECONDS` makes every upload abort and retry
forever, so such a cap is refused (by ``check`` and ``run`` in tahoe.cfg, and by
the live ``limit``):

* a per-peer cap carries one server's block: floor = ``ceil(S / k) / W``;
* the node's cap and a job's cap carry the blocks of all ``N`` servers, which
  share it: floor = ``N * ceil(S / k) / W``.

At 3-of-10 that is 1865 bps (233.1 B/s) for a peer and 18642 bps (2330.2 B/s) for
the node or a job. Only absolute rates are judged here: ``unlimited`` has no
floor, a percentage is a fraction of a capacity that may not be known, and a
rate of zero is refused by the rate grammar already.
"""

from __future__ import annotations

import math

import attrs

from tahoe_governor.policy.units import Rate
from tahoe_governor.throttle.backlog_gate import SEGMENT_BYTES

MAX_SEGMENT_SIZE = SEGMENT_BYTES
"""Tahoe's default ``max_segment_size``: the bytes of a file encoded at a time."""

IDLE_WINDOW_SECONDS = 25 * 60
"""The window a block must pass in: the storage server's 30-minute idle limit less
five minutes of margin. The job runner aborts in-flight files when a suspension
would outlast it (``backup.job_runner.IDLE_ABORT_SECONDS`` is this figure)."""

DEFAULT_SHARES_NEEDED = 3
DEFAULT_SHARES_TOTAL = 10


@attrs.frozen
class Encoding:
    """Tahoe's erasure coding, as ``[client] shares.needed`` and ``shares.total`` set it."""

    needed: int = DEFAULT_SHARES_NEEDED
    total: int = DEFAULT_SHARES_TOTAL

    @property
    def block_bytes(self) -> int:
        """The bytes of one segment that one server receives."""
        return math.ceil(MAX_SEGMENT_SIZE / self.needed)


def peer_floor(encoding: Encoding) -> float:
    """Bytes/s below which one server's block of a segment cannot pass in the window."""
    return encoding.block_bytes / IDLE_WINDOW_SECONDS


def shared_floor(encoding: Encoding) -> float:
    """Bytes/s below which a segment's blocks to all ``N`` servers cannot pass in the
    window, for a cap the servers share (the node's, a job's)."""
    return encoding.total * encoding.block_bytes / IDLE_WINDOW_SECONDS


def below_floor(rate: Rate | None, floor: float, encoding: Encoding, shared: bool) -> str | None:
    """What was expected of ``rate`` when it is an absolute rate below ``floor``, else ``None``."""
    if rate is None or rate.kind != "absolute" or rate.bytes_per_second is None:
        return None
    if rate.bytes_per_second >= floor:
        return None
    k, n = encoding.needed, encoding.total
    shown = f"{math.ceil(floor * 8)} bps ({math.ceil(floor * 10) / 10:g} B/s)"
    if shared:
        what = (f"the {n} blocks of one segment ({n} x {encoding.block_bytes} bytes at "
                f"{k}-of-{n}, sharing this cap)")
    else:
        what = f"one server's block of a segment ({encoding.block_bytes} bytes at {k}-of-{n})"
    return (
        f"at least {shown}: below it {what} cannot reach the storage servers within "
        f"{IDLE_WINDOW_SECONDS // 60} minutes, and their 30-minute idle limit aborts "
        "every upload"
    )
