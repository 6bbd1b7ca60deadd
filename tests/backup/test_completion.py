"""CompletionTracker: when directories finish, what a failure stops, when a run has settled."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.backup import BackupCancelled, BackupFailed, InFlightAborted, JobThrottle
from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.run_errors import Stopping
from tahoe_governor.backup.upload_slots import UploadSlots


def fired(d: Deferred) -> bool:
    return d.called


class Harness:
    """A tracker whose directory tasks are recorded and answered by the test."""

    def __init__(self, capacity: int = 4) -> None:
        self.throttle = JobThrottle(Clock())
        self.slots = UploadSlots(capacity)
        self.finished: list[str] = []
        self.stops = 0
        self.tracker = CompletionTracker(
            throttle=self.throttle, slots=self.slots, finish_directory=self.finish,
            on_stop=self.on_stop)

    async def finish(self, job: DirectoryJob) -> Any:
        self.finished.append(job.path)
        return ("dirnode", b"dir:" + job.path.encode(), {"children": sorted(job.children)})

    def on_stop(self) -> None:
        self.stops += 1

    def task(self, job: DirectoryJob, name: str, slots: int = 0) -> Deferred:
        """Start a child task of ``job`` that ends when the returned Deferred fires."""
        gate: Deferred = Deferred()

        async def work() -> Any:
            return await gate

        self.tracker.start(job, name, work(), slots)
        return gate


def test_a_directory_finishes_once_listed_and_its_children_are_in():
    """Neither listing alone nor the children alone finish a directory; both do, once."""
    h = Harness()
    root = DirectoryJob(path="/r", name=None, parent=None)
    h.tracker.entered(root)
    a = h.task(root, "a")
    b = h.task(root, "b")
    h.tracker.listed(root)
    a.callback(("filenode", b"cap-a", {}))
    assert h.finished == []
    assert not fired(h.tracker.settled())
    b.callback(None)  # nothing to add, e.g. an unreadable file
    assert h.finished == ["/r"]
    assert h.tracker.root_child == ("dirnode", b"dir:/r", {"children": ["a"]})
    assert fired(h.tracker.settled())


def test_a_subdirectory_is_added_to_its_parent_before_the_parent_finishes():
    """The parent waits for a listed subdirectory and finishes with its entry."""
    h = Harness()
    root = DirectoryJob(path="/r", name=None, parent=None)
    sub = DirectoryJob(path="/r/s", name="s", parent=root)
    h.tracker.entered(root)
    h.tracker.entered(sub)
    assert root.outstanding == 1
    f = h.task(sub, "f")
    h.tracker.listed(sub)
    h.tracker.listed(root)
    assert h.finished == []
    f.callback(("filenode", b"cap-f", {}))
    assert h.finished == ["/r/s", "/r"]
    assert root.children == {"s": ("dirnode", b"dir:/r/s", {"children": ["f"]})}
    assert h.tracker.root_child == ("dirnode", b"dir:/r", {"children": ["s"]})


def test_a_task_gives_back_its_upload_slots_when_it_ends():
    """The slots a task was started with are released when it ends, success or failure."""
    h = Harness(capacity=4)
    root = DirectoryJob(path="/r", name=None, parent=None)
    h.slots.acquire(10**9)  # fires at once: all four slots
    done = h.task(root, "big", slots=4)
    assert h.slots.available == 0
    done.callback(("filenode", b"cap", {}))
    assert h.slots.available == 4


def test_the_first_failure_stops_the_run():
    """A failed task: the run fails with BackupFailed, every lease (now and later) fails,
    no directory finishes, and on_stop is told once."""
    h = Harness()
    root = DirectoryJob(path="/r", name=None, parent=None)
    held = h.tracker.new_lease(abortable=False)
    bad = h.task(root, "bad")
    other = h.task(root, "other")
    h.tracker.listed(root)
    bad.errback(RuntimeError("grid refused"))
    assert isinstance(h.tracker.final_error, BackupFailed)
    assert h.tracker.final_error.cause.check(RuntimeError)
    assert "RuntimeError: grid refused" in str(h.tracker.final_error)
    assert isinstance(held.error, Stopping)
    assert isinstance(h.tracker.new_lease(abortable=True).error, Stopping)
    with pytest.raises(Stopping):
        h.tracker.raise_if_stopped()
    settled = h.tracker.settled()
    assert not fired(settled)
    other.errback(Stopping())  # a consequence of the stop: not a second failure
    assert fired(settled)
    assert h.finished == [] and h.stops == 1


@pytest.mark.parametrize("consequence", [BackupCancelled, Stopping, InFlightAborted])
def test_failures_caused_by_a_stop_do_not_replace_its_error(consequence: type[Exception]):
    """After a cancel, tasks failing with the stop's own errors leave BackupCancelled."""
    h = Harness()
    root = DirectoryJob(path="/r", name=None, parent=None)
    t = h.task(root, "t")
    cancelled = BackupCancelled("backup run cancelled")
    h.tracker.stop(cancelled, cancelled)
    t.errback(consequence())
    assert h.tracker.final_error is cancelled
    h.tracker.stop(BackupCancelled("again"), BackupCancelled("again"))
    assert h.tracker.final_error is cancelled and h.stops == 1


def test_dropped_leases_are_not_failed_by_a_later_stop():
    """A lease whose activity ended is forgotten, by the tracker and by the throttle."""
    h = Harness()
    lease = h.tracker.new_lease(abortable=True)
    h.tracker.drop_lease(lease)
    h.tracker.stop(BackupCancelled(), BackupCancelled())
    assert lease.error is None
    assert h.throttle.abort_in_flight() == 0
