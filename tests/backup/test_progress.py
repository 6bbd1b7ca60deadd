"""Progress snapshots: frozen values, public vs private fields, rates and the ETA."""

from __future__ import annotations

import attrs
import pytest

from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.status import BackupProgress, SkipCounts, is_private, public_dict


def test_snapshot_is_frozen_and_detached():
    """A snapshot never changes after it is taken, and cannot be changed."""
    counters = ProgressCounters(now=0.0)
    before = counters.snapshot(0.0, suspended=False)
    counters.reused_file(10, now=0.5)
    assert before.files_reused == 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.files_reused = 3  # type: ignore[misc]


def test_public_fields_leave_out_every_private_one():
    """public_dict drops the fields marked private; every private field is named private_."""
    counters = ProgressCounters(now=0.0)
    counters.start_file("/home/me/secret.txt")
    snapshot = counters.snapshot(1.0, suspended=True)
    public = public_dict(snapshot)
    assert "/home/me" not in repr(public)
    assert public["files_in_flight"] == 1 and public["suspended"] is True
    assert public["skipped"] == {"unreadable": 0, "special": 0, "symlink": 0, "undecodable": 0}
    private = {f.name for f in attrs.fields(BackupProgress) if is_private(f)}
    assert private == {"private_current_paths"}
    assert all(name.startswith("private_") == (name in private)
               for name in attrs.fields_dict(BackupProgress))
    assert snapshot.private_current_paths == ("/home/me/secret.txt",)


def test_skips_count_by_reason_and_kind():
    """Skips count per reason, and as files or directories as tahoe backup reports them."""
    counters = ProgressCounters(now=0.0)
    counters.skip("symlink", False, 0, 0.0)
    counters.skip("unreadable", True, 0, 0.0)
    counters.start_file("f")
    counters.end_file("f", "unreadable", 5, 0.0)
    s = counters.snapshot(0.0, False)
    assert s.skipped == SkipCounts(unreadable=2, symlink=1)
    assert (s.files_skipped, s.directories_skipped, s.skipped.total) == (2, 1, 3)


def test_rate_and_eta_from_the_window():
    """Rate: bytes handed per second over whole ticks; ETA: what remains at the progress pace."""
    counters = ProgressCounters(now=100.0, tick_seconds=1.0, window_ticks=30)
    counters.estimated_files, counters.estimated_bytes = 2, 10_000
    counters.start_file("a")
    for second in range(4):  # 1000 bytes handed in each of 4 seconds
        counters.read_bytes("a", 1000, 100.0 + second + 0.5)
    s = counters.snapshot(104.0, False)
    assert s.rate_bytes_per_second == pytest.approx(1000.0)
    assert s.bytes_done == 4000
    assert s.eta_seconds == pytest.approx(6.0)
    counters.end_file("a", "uploaded", 4000, 104.0)
    counters.reused_file(6000, 104.5)  # the rest is reused at once
    s = counters.snapshot(105.0, False)
    assert s.bytes_done == 10_000 and s.eta_seconds == 0.0
    assert s.files_uploaded == 1 and s.files_reused == 1 and s.bytes_reused == 6000


def test_no_eta_without_an_estimate_or_a_pace():
    """Before the estimate is known, or before a whole tick has passed, there is no ETA."""
    counters = ProgressCounters(now=0.0)
    counters.reused_file(100, 0.5)
    assert counters.snapshot(0.9, False).eta_seconds is None  # no whole tick yet
    assert counters.snapshot(5.0, False).eta_seconds is None  # no estimate
    counters.estimated_bytes = 1000
    assert counters.snapshot(5.0, False).eta_seconds is not None


def test_rate_window_forgets_old_ticks():
    """After a long quiet gap the rate falls to zero (the window holds only recent ticks)."""
    counters = ProgressCounters(now=0.0, tick_seconds=1.0, window_ticks=5)
    counters.start_file("a")
    counters.read_bytes("a", 5000, 0.5)
    assert counters.snapshot(1.0, False).rate_bytes_per_second == pytest.approx(5000.0)
    assert counters.snapshot(1000.0, False).rate_bytes_per_second == 0.0
