"""UploadSlots: weighted, first-come-first-served upload slots of a job."""

from __future__ import annotations

import pytest

from tahoe_governor.backup.upload_slots import (
    LARGE_UPLOAD_WEIGHT,
    SMALL_UPLOAD_BYTES,
    UploadSlots,
)


def granted(d) -> int | None:
    """The weight a Deferred from acquire fired with, or None while it waits."""
    out: list[int] = []

    def keep(n: int) -> int:
        out.append(n)
        return n

    d.addCallback(keep)
    return out[0] if out else None


def test_small_uploads_take_one_slot_large_ones_several():
    slots = UploadSlots(8)
    assert slots.weight(0) == 1
    assert slots.weight(SMALL_UPLOAD_BYTES) == 1
    assert slots.weight(SMALL_UPLOAD_BYTES + 1) == LARGE_UPLOAD_WEIGHT
    assert [granted(slots.acquire(1000)) for _ in range(8)] == [1] * 8
    assert slots.available == 0
    assert granted(slots.acquire(1000)) is None


def test_a_large_upload_never_needs_more_than_there_is():
    slots = UploadSlots(1)
    assert granted(slots.acquire(10**9)) == 1
    waiting = slots.acquire(10**9)
    assert granted(waiting) is None
    slots.release(1)
    assert granted(waiting) == 1


def test_requests_are_granted_in_order_so_large_ones_are_not_starved():
    slots = UploadSlots(4)
    held = [granted(slots.acquire(10)) for _ in range(3)]
    large = slots.acquire(10**6)  # needs all 4: waits
    small = slots.acquire(10)  # would fit now, but must not overtake
    assert granted(large) is None and granted(small) is None
    slots.release(held.pop())
    slots.release(held.pop())
    assert granted(large) is None  # 3 free of the 4 it needs
    slots.release(held.pop())
    assert granted(large) == LARGE_UPLOAD_WEIGHT
    assert granted(small) is None
    slots.release(LARGE_UPLOAD_WEIGHT)
    assert granted(small) == 1
    assert slots.available == 3


def test_bad_capacity_and_over_release_are_errors():
    with pytest.raises(ValueError, match="capacity must be a whole number >= 1, got 0"):
        UploadSlots(0)
    with pytest.raises(ValueError):
        UploadSlots(True)
    slots = UploadSlots(2)
    with pytest.raises(RuntimeError, match="released more slots"):
        slots.release(1)
