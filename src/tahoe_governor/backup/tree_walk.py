"""Walking the local tree of a backup run: list, classify, exclude, skip, descend; and the estimate.

:class:`TreeWalk` goes through the source depth first, in name order, as
``tahoe backup`` does (the rules are :mod:`~tahoe_governor.backup.tree`'s):
excluded names and skipped entries are counted, directories are descended
into, and each regular file is handed to the run (``visit_file``), which
reuses, checks or uploads it. Every entry first passes the job's throttle.

The walk is a loop over an explicit stack of open directories, so a tree of
any depth walks; each directory is opened relative to its parent, without
following links, and must be the one its listing saw. Every filesystem call
(open, list, the records query) runs through ``run_blocking``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.job_throttle import JobThrottle, Lease
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.run_errors import SourceError
from tahoe_governor.backup.tree import (
    DirectoryHandle,
    EntryKind,
    ExcludePatterns,
    TreeEstimate,
    classify,
    estimate_tree,
    identity,
    is_decodable,
    list_directory,
    listed_stat,
    open_root,
    open_subdirectory,
    reopen_parent,
)
from tahoe_governor.backup.uploadable import RunBlocking
from tahoe_governor.throttle.reactor_clock import ReactorClock

log = Logger()

Record = tuple[Any, ...]
"""A file's backupdb record (see :func:`~tahoe_governor.backup.backupdb.recorded_children`)."""

ListDirectory = Callable[[int], list[os.DirEntry[str]]]
"""Lists the open directory ``fd``, sorted by name, each entry's lstat cached (blocking: it
runs in the thread pool); raises OSError if it cannot. See
:func:`~tahoe_governor.backup.tree.list_directory`."""

VisitFile = Callable[[DirectoryJob, str, str, Record | None, "os.stat_result | None"],
                     Awaitable[None]]
"""``visit_file(job, name, path, record, listed)``: back up a regular file of ``job``
(``listed``: its lstat from the listing, if the listing got one)."""


def no_records(_path: str) -> Mapping[str, Record]:
    """The records of a run that ignores timestamps: none (every file goes to ``check_file``)."""
    return {}


class TreeWalk:
    """The depth-first walk of one run.

    :param clock: for the timestamps of skips.
    :param counters: the run's progress counters (excluded, seen, skipped).
    :param exclude: names to leave out.
    :param throttle: every entry waits for it (suspension, the CPU gate).
    :param completion: told when a directory is listed and when it is walked;
        a run that is stopping stops the walk.
    :param visit_file: handles each regular file.
    :param records: the backupdb records of a directory's files, by name.
    :param run_blocking: runs every filesystem call of the walk, and ``records``,
        off the reactor thread.
    :param list_directory: how a directory is listed (a seam for tests).
    """

    def __init__(
        self,
        *,
        clock: ReactorClock,
        counters: ProgressCounters,
        exclude: ExcludePatterns,
        throttle: JobThrottle,
        completion: CompletionTracker,
        visit_file: VisitFile,
        run_blocking: RunBlocking,
        records: Callable[[str], Mapping[str, Record]] = no_records,
        list_directory: ListDirectory = list_directory,
    ) -> None:
        self._clock = clock
        self._counters = counters
        self._exclude = exclude
        self._throttle = throttle
        self._completion = completion
        self._visit_file = visit_file
        self._run_blocking = run_blocking
        self._records = records
        self._list_directory = list_directory

    async def walk(self, root: DirectoryJob, lease: Lease) -> None:
        """Walk the tree under ``root``: list each directory and start (or finish) the work
        of every entry, depth first, in name order.

        The walk keeps an explicit stack of the directories it is in, not
        Python's, so any depth works. A root that cannot be opened or listed
        is a :class:`SourceError`; any other directory that cannot be, or is
        not the one its listing saw (see
        :func:`~tahoe_governor.backup.tree.open_subdirectory`), is skipped as
        ``unreadable``.
        """
        try:
            fd, st = await self._run_blocking(open_root, root.path)
        except OSError as e:
            raise SourceError(f"cannot list the backup source {root.path}: {e.strerror}") from e
        root.handle = DirectoryHandle(fd, st)
        try:
            frame = await self._enter(root)
        except OSError as e:
            root.handle.release()
            raise SourceError(f"cannot list the backup source {root.path}: {e.strerror}") from e
        assert frame is not None
        stack = [frame]
        try:
            while stack:
                frame = stack[-1]
                child = await self._walk_entries(frame, lease)
                if child is not None:
                    stack.append(child)
                    continue
                stack.pop()
                self._completion.listed(frame.job)
                if stack:
                    await self._return_to(stack[-1], frame)
                frame.let_go()
        finally:
            for frame in stack:
                frame.let_go()

    async def _walk_entries(self, frame: _Frame, lease: Lease) -> _Frame | None:
        """Go on with ``frame``'s entries up to its next subdirectory, entered (its frame),
        or to the end (None)."""
        counters = self._counters
        job = frame.job
        while frame.next < len(frame.entries):
            entry = frame.entries[frame.next]
            frame.next += 1
            self._completion.raise_if_stopped()
            await self._throttle.admit(lease)
            name = entry.name
            if self._exclude.excludes(name):
                counters.excluded += 1
                continue
            kind = classify(entry) if is_decodable(name) else EntryKind.UNDECODABLE
            if kind is EntryKind.DIRECTORY:
                child = await self._descend(frame, entry)
                if child is not None:
                    return child
                continue
            if kind is EntryKind.UNDECODABLE and _is_dir(entry):
                counters.skip("undecodable", True, 0, self._clock.seconds())
                continue
            counters.files_seen += 1
            if kind is EntryKind.FILE and job.handle is not None and job.handle.fd is not None:
                await self._visit_file(job, name, os.path.join(job.path, name),
                                       frame.records.get(name), listed_stat(entry))
            elif kind is EntryKind.FILE:  # its directory was lost on the way back up
                counters.skip("unreadable", False, 0, self._clock.seconds())
            else:
                counters.skip(kind.value, False, 0, self._clock.seconds())
        return None

    async def _descend(self, frame: _Frame, entry: os.DirEntry[str]) -> _Frame | None:
        """Open and list the subdirectory ``entry`` of ``frame``; None if it is skipped."""
        parent = frame.job.handle
        listed = listed_stat(entry)
        if parent is None or parent.fd is None:
            self._skip_directory(frame.job.path, entry.name, "its parent was lost")
            return None
        try:
            fd, st = await self._run_blocking(
                open_subdirectory, parent.fd, entry.name,
                identity(listed) if listed is not None else None)
        except OSError as e:
            self._skip_directory(frame.job.path, entry.name, e.strerror or str(e))
            return None
        job = DirectoryJob(path=os.path.join(frame.job.path, entry.name), name=entry.name,
                           parent=frame.job)
        job.handle = DirectoryHandle(fd, st)
        try:
            child = await self._enter(job)
        except OSError as e:
            job.handle.release()
            self._skip_directory(frame.job.path, entry.name, e.strerror or str(e))
            return None
        # the walk lets go of the parent while below it: it comes back through ".."
        frame.let_go()
        return child

    async def _enter(self, job: DirectoryJob) -> _Frame:
        """List ``job``'s open directory and read its files' records; raises OSError."""
        assert job.handle is not None and job.handle.fd is not None
        job.listing_stat = job.handle.stat
        entries = await self._run_blocking(self._list_directory, job.handle.fd)
        self._completion.entered(job)
        records = await self._run_blocking(self._records, job.path)
        return _Frame(job, entries, records)

    async def _return_to(self, frame: _Frame, child: _Frame) -> None:
        """Back from ``child`` into ``frame``: its directory held again (opened through
        ``..`` if nothing kept it open). If that fails, the rest of it is skipped."""
        handle = frame.job.handle
        assert handle is not None and child.job.handle is not None
        if handle.fd is not None:
            handle.hold()
        else:
            try:
                fd = await self._run_blocking(reopen_parent, child.job.handle.fd,
                                              handle.identity)
            except OSError as e:
                self._skip_directory(frame.job.path, "..", e.strerror or str(e), count=False)
                return
            handle.reopen(fd)
        frame.held = True

    def _skip_directory(self, parent: str, name: str, reason: str, count: bool = True) -> None:
        if count:
            self._counters.skip("unreadable", True, 0, self._clock.seconds())
        log.info("backup walk: skipped directory {name!r} in {parent!r}: {reason}",
                 name=name, parent=parent, reason=reason)

    def start_estimate(self, root: str, run_blocking: RunBlocking,
                       stop: threading.Event) -> None:
        """Count what ``root`` holds in the background (``run_blocking``) into the counters.

        Setting ``stop`` ends the count early, and then its figures are not used.
        """
        d = run_blocking(estimate_tree, root, self._exclude, stop)

        def got(estimate: TreeEstimate) -> None:
            if not stop.is_set():  # a stopped walk counted only part
                self._counters.estimated_files = estimate.files
                self._counters.estimated_bytes = estimate.bytes

        d.addCallbacks(got, lambda _f: None)


@attrs.define(eq=False)
class _Frame:
    """A directory the walk is in: its job, its listing, how far the walk is, its records."""

    job: DirectoryJob
    entries: list[os.DirEntry[str]]
    records: Mapping[str, Record]
    next: int = 0
    held: bool = True
    """Whether the walk holds the directory open (it does not while below it)."""

    def let_go(self) -> None:
        if self.held:
            self.held = False
            assert self.job.handle is not None
            self.job.handle.release()


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
