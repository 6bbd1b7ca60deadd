"""TreeWalk: order, excludes, skips and descent over a real local tree, with fakes for the rest."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.backup import BackupCancelled, ExcludePatterns, JobThrottle, SourceError
from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.tree import list_directory
from tahoe_governor.backup.tree_walk import TreeWalk
from tahoe_governor.backup.upload_slots import UploadSlots

from .no_reactor import result_of, run_now


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
        self.finished: list[str] = []
        self.completion = CompletionTracker(
            throttle=self.throttle, slots=UploadSlots(4), finish_directory=self.finish)
        self.walker = TreeWalk(
            clock=self.clock, counters=self.counters, exclude=ExcludePatterns(exclude),
            throttle=self.throttle, completion=self.completion, visit_file=self.visit, **kw)

    async def visit(self, job: DirectoryJob, name: str, path: str, record: Any) -> None:
        self.files.append((os.path.relpath(path, self.root), name, record))

    async def finish(self, job: DirectoryJob) -> Any:
        self.finished.append(os.path.relpath(job.path, self.root))
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
    denied = {str(tmp_path / "locked")}

    def deny(path: str) -> list[os.DirEntry[str]]:
        if path in denied:
            raise PermissionError(13, "Permission denied", path)
        return list_directory(path)

    h = Harness(tmp_path, list_directory=deny)
    assert h.walk().called
    assert [f[0] for f in h.files] == ["ok/x"]
    p = h.counters.snapshot(0, False)
    assert (p.skipped.unreadable, p.directories_skipped) == (1, 1)
    assert h.finished == ["ok", "."]
    denied.add(str(tmp_path))
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
