"""TreeWalk: order, excludes, skips and descent over a real local tree, with fakes for the rest."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.backup import BackupCancelled, ExcludePatterns, JobThrottle, SourceError
from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.tree import estimate_tree, list_directory
from tahoe_governor.backup.tree_walk import TreeWalk
from tahoe_governor.backup.upload_slots import UploadSlots

from .deep_tree import make_deep_tree, remove_deep_tree
from .no_reactor import result_of, run_now

DEPTH = 10_000


def write(root: Any, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Harness:
    """A TreeWalk over ``root`` whose files are only recorded, and whose directories finish
    at once."""

    def __init__(self, root: Any, exclude: tuple[str, ...] = (), **kw: Any) -> None:
        self.root = str(root)
        self.clock = Clock()
        self.throttle = JobThrottle(self.clock)
        self.counters = ProgressCounters(self.clock.seconds())
        self.files: list[tuple[str, str, Any]] = []
        self.listed: list[Any] = []
        self.finished: list[str] = []
        self.completion = CompletionTracker(
            throttle=self.throttle, slots=UploadSlots(4), finish_directory=self.finish)
        self.walker = TreeWalk(
            clock=self.clock, counters=self.counters, exclude=ExcludePatterns(exclude),
            throttle=self.throttle, completion=self.completion, visit_file=self.visit,
            run_blocking=run_now, **kw)

    async def visit(self, job: DirectoryJob, name: str, path: str, record: Any,
                    listed: Any) -> None:
        self.listed.append(listed)
        self.files.append((self.relative(path), name, record))

    def relative(self, path: str) -> str:
        # not os.path.relpath: at 10,000 levels its cost grows with the square of the depth
        assert path.startswith(self.root)
        return path[len(self.root) + 1:] or "."

    async def finish(self, job: DirectoryJob) -> Any:
        self.finished.append(self.relative(job.path))
        return ("dirnode", b"cap", {})

    def walk(self) -> Deferred:
        root = DirectoryJob(path=self.root, name=None, parent=None)
        return Deferred.fromCoroutine(
            self.walker.walk(root, self.completion.new_lease(abortable=False)))


def test_depth_first_in_name_order_with_excludes_and_skips(tmp_path):
    """Files reach visit_file depth first by name; excluded names, symlinks and FIFOs are
    counted, not visited; each directory finishes after its children."""
    write(tmp_path, {"b.txt": b"b", "a/z.txt": b"z", "a/y.tmp": b"y", "c/d/e": b"e"})
    os.symlink("b.txt", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    h = Harness(tmp_path, exclude=("*.tmp",))
    assert h.walk().called
    assert [f[0] for f in h.files] == ["a/z.txt", "b.txt", "c/d/e"]
    assert h.finished == ["a", "c/d", "c", "."]
    c = h.counters
    assert (c.excluded, c.files_seen) == (1, 5)
    assert h.counters.snapshot(0, False).skipped.symlink == 1
    assert h.counters.snapshot(0, False).skipped.special == 1


def test_each_file_gets_its_record_from_its_directorys_records(tmp_path):
    """The records seam is asked once per directory; each file gets its own record."""
    write(tmp_path, {"a": b"a", "sub/b": b"b"})
    asked: list[str] = []

    def records(path: str) -> dict[str, Any]:
        asked.append(os.path.relpath(path, tmp_path))
        return {"a": ("record of a",)}

    h = Harness(tmp_path, records=records)
    h.walk()
    assert asked == [".", "sub"]
    assert [(name, record) for _, name, record in h.files] == [("a", ("record of a",)),
                                                                ("b", None)]


def test_an_unlistable_directory_is_skipped_but_an_unlistable_root_is_a_source_error(tmp_path):
    """Through the list_directory seam: a subdirectory that cannot be listed is counted as an
    unreadable directory and left out; the root is a SourceError."""
    write(tmp_path, {"ok/x": b"x", "locked/y": b"y"})
    denied = {os.stat(tmp_path / "locked").st_ino}

    def deny(fd: int) -> list[os.DirEntry[str]]:
        if os.fstat(fd).st_ino in denied:
            raise PermissionError(13, "Permission denied")
        return list_directory(fd)

    h = Harness(tmp_path, list_directory=deny)
    assert h.walk().called
    assert [f[0] for f in h.files] == ["ok/x"]
    p = h.counters.snapshot(0, False)
    assert (p.skipped.unreadable, p.directories_skipped) == (1, 1)
    assert h.finished == ["ok", "."]
    denied.add(os.stat(tmp_path).st_ino)
    assert result_of(Harness(tmp_path, list_directory=deny).walk()).check(SourceError)


def test_the_walk_waits_while_the_throttle_is_suspended(tmp_path):
    """Every entry passes the throttle: suspended, the walk holds; resumed, it goes on."""
    write(tmp_path, {"a": b"a"})
    h = Harness(tmp_path)
    h.throttle.suspend()
    d = h.walk()
    assert not d.called and h.files == []
    h.throttle.resume()
    assert d.called and [f[0] for f in h.files] == ["a"]


def test_a_stopped_run_stops_the_walk(tmp_path):
    """Once the run is stopping, the next entry raises the stop's error."""
    write(tmp_path, {"a": b"a"})
    h = Harness(tmp_path)
    h.completion.stop(BackupCancelled(), BackupCancelled())
    assert result_of(h.walk()).check(BackupCancelled)
    assert h.files == [] and h.finished == []


@pytest.mark.parametrize("stopped", [False, True])
def test_the_estimate_counts_the_tree_unless_stopped(tmp_path, stopped: bool):
    """The estimate fills the counters' figures; a stopped estimate leaves them alone."""
    write(tmp_path, {"a": b"aa", "d/b": b"bbb", "skip.tmp": b"t"})
    h = Harness(tmp_path, exclude=("*.tmp",))
    stop = threading.Event()
    if stopped:
        stop.set()
    h.walker.start_estimate(h.root, run_now, stop)
    got = (h.counters.estimated_files, h.counters.estimated_bytes)
    assert got == ((None, None) if stopped else (2, 5))


def test_a_tree_10000_directories_deep_is_walked_without_recursion(tmp_path):
    """A real tree 10,000 levels deep (its paths far past PATH_MAX): every directory is
    listed and finished, deepest first, and the file at the bottom is visited with its
    listing's lstat; the estimate counts it too. (Today: RecursionError at ~1,000 levels.)"""
    root = tmp_path / "deep"
    root.mkdir()
    make_deep_tree(str(root), DEPTH, bottom_file=("bottom.txt", b"at the bottom"))
    try:
        h = Harness(root)
        started = time.monotonic()
        assert result_of(h.walk()) is None
        walked = time.monotonic() - started
        assert len(h.finished) == DEPTH + 1 and h.finished[-1] == "."
        assert h.finished[0].count("/") == DEPTH - 1
        [(rel, name, _record)] = h.files
        assert name == "bottom.txt" and rel.count("/") == DEPTH
        assert h.listed[0].st_size == len(b"at the bottom")
        assert h.counters.snapshot(0, False).skipped.total == 0
        estimate = estimate_tree(str(root), ExcludePatterns())
        assert (estimate.files, estimate.bytes) == (1, len(b"at the bottom"))
        print(f"walked {DEPTH} levels in {walked:.2f} s")
    finally:
        remove_deep_tree(str(root))


def test_the_walk_holds_few_directory_descriptors_at_any_depth(tmp_path):
    """Below 500 levels the walk has at most a few directories open (it comes back up
    through '..'), so a deep tree cannot run the process out of descriptors."""
    root = tmp_path / "deep"
    root.mkdir()
    make_deep_tree(str(root), 500, bottom_file=("f", b"f"))
    try:
        open_at_bottom: list[int] = []
        h = Harness(root)

        async def visit(job, name, path, record, listed):
            open_at_bottom.append(len(os.listdir("/proc/self/fd")))

        h.walker._visit_file = visit
        before = len(os.listdir("/proc/self/fd"))
        assert result_of(h.walk()) is None
        assert open_at_bottom and open_at_bottom[0] - before <= 3
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        remove_deep_tree(str(root))
