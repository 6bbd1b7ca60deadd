"""Walking the local tree of a backup run: list, classify, exclude, skip, descend; and the estimate.

:class:`TreeWalk` goes through the source depth first, in name order, as
``tahoe backup`` does (the rules are :mod:`~tahoe_governor.backup.tree`'s):
excluded names and skipped entries are counted, directories are descended
into, and each regular file is handed to the run (``visit_file``), which
reuses, checks or uploads it. Every entry first passes the job's throttle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.job_throttle import JobThrottle, Lease
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.run_errors import SourceError
from tahoe_governor.backup.tree import (
    EntryKind,
    ExcludePatterns,
    TreeEstimate,
    classify,
    estimate_tree,
    is_decodable,
    list_directory,
)
from tahoe_governor.backup.uploadable import RunBlocking
from tahoe_governor.throttle.reactor_clock import ReactorClock

Record = tuple[Any, ...]
"""A file's backupdb record (see :func:`~tahoe_governor.backup.backupdb.recorded_children`)."""

ListDirectory = Callable[[str], list[os.DirEntry[str]]]
"""Lists a directory, sorted by name; raises OSError if it cannot."""

VisitFile = Callable[[DirectoryJob, str, str, Record | None], Awaitable[None]]
"""``visit_file(job, name, path, record)``: back up a regular file of ``job``."""


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
        records: Callable[[str], Mapping[str, Record]] = no_records,
        list_directory: ListDirectory = list_directory,
    ) -> None:
        self._clock = clock
        self._counters = counters
        self._exclude = exclude
        self._throttle = throttle
        self._completion = completion
        self._visit_file = visit_file
        self._records = records
        self._list_directory = list_directory

    async def walk(self, job: DirectoryJob, lease: Lease) -> None:
        """List ``job``'s directory and start (or finish) the work of every entry.

        A root that cannot be listed is a :class:`SourceError`; any other
        directory that cannot be listed is skipped as ``unreadable``.
        """
        counters = self._counters
        try:
            job.listing_stat = os.stat(job.path)
            entries = self._list_directory(job.path)
        except OSError as e:
            if job.parent is None:
                raise SourceError(f"cannot list the backup source {job.path}: {e.strerror}") from e
            counters.skip("unreadable", True, 0, self._clock.seconds())
            return
        self._completion.entered(job)
        records = self._records(job.path)
        for entry in entries:
            self._completion.raise_if_stopped()
            await self._throttle.admit(lease)
            name = entry.name
            if self._exclude.excludes(name):
                counters.excluded += 1
                continue
            kind = classify(entry) if is_decodable(name) else EntryKind.UNDECODABLE
            if kind is EntryKind.DIRECTORY:
                await self.walk(DirectoryJob(path=entry.path, name=name, parent=job), lease)
                continue
            if kind is EntryKind.UNDECODABLE and _is_dir(entry):
                counters.skip("undecodable", True, 0, self._clock.seconds())
                continue
            counters.files_seen += 1
            if kind is EntryKind.FILE:
                await self._visit_file(job, name, entry.path, records.get(name))
            else:
                counters.skip(kind.value, False, 0, self._clock.seconds())
        self._completion.listed(job)

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


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
