"""When a backup run's work is done: its directory jobs, the tasks in flight, stopping and settling.

A directory is finished (its immutable directory reused or made) once it has
been listed and every child it waits on is in: the uploads and checks of its
files, and the directories below it. :class:`CompletionTracker` counts what
each :class:`DirectoryJob` still waits on, starts the directory's own task when
nothing is left, and hands the result up to the parent. It also holds the
run's stop: the first failure (or a cancel) fails every lease of the run, so
waits end at once and nothing new starts, and :meth:`CompletionTracker.settled`
tells when every task has ended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from tahoe_governor.backup.grid_operations import Child
from tahoe_governor.backup.job_throttle import InFlightAborted, JobThrottle, Lease
from tahoe_governor.backup.run_errors import BackupCancelled, BackupFailed, Stopping, describe
from tahoe_governor.backup.tree import DirectoryHandle
from tahoe_governor.backup.upload_slots import UploadSlots

DirectoryTask = Callable[["DirectoryJob"], Coroutine[Any, Any, Child]]
"""Makes the immutable directory of a finished :class:`DirectoryJob` (its child entry)."""


@attrs.define(eq=False)
class DirectoryJob:
    """A directory being backed up: its children so far and what is still out."""

    path: str
    name: str | None
    parent: DirectoryJob | None
    listing_stat: os.stat_result | None = None
    handle: DirectoryHandle | None = None
    """The open directory (see :class:`~tahoe_governor.backup.tree.DirectoryHandle`)."""
    children: dict[str, Child] = attrs.Factory(dict)
    outstanding: int = 0
    listed: bool = False
    finishing: bool = False

    def add(self, name: str, child: Child) -> None:
        self.children[name] = child


class CompletionTracker:
    """The in-flight work of one run, and when it is finished, stopped or settled.

    :param throttle: the job's throttle, whose leases the run's activities hold.
    :param slots: the run's upload slots; a task's slots are given back when it ends.
    :param finish_directory: the task that makes a directory once all its children are in.
    :param on_stop: called once, when the run stops (a failure or a cancel).
    """

    def __init__(self, *, throttle: JobThrottle, slots: UploadSlots,
                 finish_directory: DirectoryTask,
                 on_stop: Callable[[], object] = lambda: None) -> None:
        self._throttle = throttle
        self._slots = slots
        self._finish_directory = finish_directory
        self._on_stop = on_stop
        self._leases: set[Lease] = set()
        self._ready: list[DirectoryJob] = []
        self._finishing_ready = False
        self._active = 0
        self._idle_waiters: list[Deferred[None]] = []
        self._lease_error: BaseException | None = None
        self.final_error: BaseException | None = None
        """What the run fails with, once it is stopping; None while it goes on."""
        self.root_child: Child | None = None
        """The root directory's entry, once the root directory is made."""

    # -- directories -----------------------------------------------------------

    def entered(self, job: DirectoryJob) -> None:
        """``job`` was listed: its parent now waits for it too."""
        if job.parent is not None:
            job.parent.outstanding += 1

    def listed(self, job: DirectoryJob) -> None:
        """Every entry of ``job`` has been walked; it may finish once its children are in."""
        job.listed = True
        self._maybe_finish(job)

    def start(self, job: DirectoryJob, name: str,
              work: Coroutine[Any, Any, Child | None], slots: int) -> None:
        """Run ``work`` (a child of ``job``, holding ``slots`` upload slots) to its end.

        Its entry (None: nothing to add, e.g. an unreadable file) goes into
        ``job``; a failure stops the run.
        """
        self._active += 1
        job.outstanding += 1
        Deferred.fromCoroutine(work).addBoth(self._child_done, job, name, slots)

    def _child_done(self, result: Any, job: DirectoryJob, name: str, slots: int) -> None:
        if slots:
            self._slots.release(slots)
        if isinstance(result, Failure):
            self._task_failed(result)
        elif result is not None:
            job.add(name, result)
        job.outstanding -= 1
        self._maybe_finish(job)
        self._task_ended()

    def _maybe_finish(self, job: DirectoryJob) -> None:
        """Start the directory's own task once it is listed and all its children are in.

        A directory task that ends at once finishes its parent from here too: the
        chain up a deep tree is a loop over :attr:`_ready`, not nested calls.
        """
        self._ready.append(job)
        if self._finishing_ready:
            return  # the loop below, further up the stack, takes it
        self._finishing_ready = True
        try:
            while self._ready:
                job = self._ready.pop()
                if (job.finishing or not job.listed or job.outstanding
                        or self.final_error is not None):
                    continue
                job.finishing = True
                self._active += 1
                Deferred.fromCoroutine(self._finish_directory(job)).addBoth(
                    self._directory_done, job)
        finally:
            self._finishing_ready = False

    def _directory_done(self, result: Any, job: DirectoryJob) -> None:
        if isinstance(result, Failure):
            self._task_failed(result)
        elif job.parent is None:
            self.root_child = result
        else:
            assert job.name is not None
            job.parent.add(job.name, result)
        if job.parent is not None:
            job.parent.outstanding -= 1
            self._maybe_finish(job.parent)
        self._task_ended()

    # -- stopping and settling -------------------------------------------------

    def _task_failed(self, failure: Failure) -> None:
        if failure.check(BackupCancelled, Stopping, InFlightAborted):
            return  # a consequence of a stop already under way
        final = BackupFailed(describe(failure), failure)
        self.stop(final, Stopping("stopped after another failure"))

    def _task_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def settled(self) -> Deferred[None]:
        """Fires when no task is running."""
        if self._active == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def stop(self, final: BaseException, lease_error: BaseException) -> None:
        """Stop the run (the first call wins): it fails with ``final``; every lease,
        now and later, fails with ``lease_error``."""
        if self.final_error is not None:
            return
        self.final_error = final
        self._lease_error = lease_error
        self._on_stop()
        for lease in list(self._leases):
            lease.fail(lease_error)

    def raise_if_stopped(self) -> None:
        """Raise the stop's lease error if the run is stopping."""
        if self._lease_error is not None:
            raise self._lease_error

    # -- leases ----------------------------------------------------------------

    def new_lease(self, abortable: bool) -> Lease:
        """A lease on the job's throttle for one activity; failed at once if stopping."""
        lease = self._throttle.lease(abortable)
        self._leases.add(lease)
        if self._lease_error is not None:
            lease.fail(self._lease_error)
        return lease

    def drop_lease(self, lease: Lease) -> None:
        """The activity holding ``lease`` has ended."""
        self._leases.discard(lease)
        self._throttle.release(lease)
