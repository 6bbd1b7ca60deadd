"""The upload floor is computed from the segment Tahoe really uses."""

from __future__ import annotations

from allmydata.interfaces import DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE

from tahoe_governor.policy.upload_floor import MAX_SEGMENT_SIZE, Encoding, peer_floor, shared_floor


def test_the_segment_is_tahoes_own() -> None:
    """Tahoe 1.19 raised its immutable segment from 128 KiB to 1 MiB; a floor computed from
    the old size let caps through at which a block needs over three hours, so every upload
    hit the servers' 30-minute idle limit."""
    assert MAX_SEGMENT_SIZE == DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE


def test_floors_at_three_of_ten() -> None:
    """One server's block of a 1 MiB segment in 25 minutes; the node's carries all ten."""
    encoding = Encoding(needed=3, total=10)
    assert round(peer_floor(encoding) * 8) == 1864
    assert round(shared_floor(encoding) * 8) == 18641
