"""The node-side ``tahoe backup``: walk a local tree, upload through the node, link a snapshot.

:class:`BackupWalker` does one run of what ``tahoe backup SOURCE TARGET``
does (``allmydata/scripts/tahoe_backup.py``), inside the node and without the
HTTP hop:

1. open the target (``alias:path`` or a directory cap), creating missing
   directories and ``Archives``;
2. walk the source tree depth first; for each regular file ask Tahoe's
   backupdb (``check_file``): reuse the recorded cap, re-check an old one on
   the grid (the backupdb's periodic re-check), or upload the file and record
   it (``did_upload``); for each directory, once all its children are known,
   ask the backupdb (``check_directory``) for an identical immutable directory
   made before, or make one (``did_create``);
3. link the new root directory as ``Archives/<UTC time>`` and ``Latest``;
4. with a retention rule (``bN.keep``), unlink the archives it does not keep
   (:func:`~tahoe_governor.backup.archives.apply_retention`). A failure here
   does not fail the run, whose snapshot is linked: the result says so, and
   the next completed run applies the rule again.

Skips (unreadable, special, symlink, undecodable), exclude patterns, child
metadata, caps and directory contents are ``tahoe backup``'s, so the backupdb
carries over in both directions (see ``docs/backup.md``).

What differs is how the work is governed:

- every byte handed to the encoder, every piece of the convergent-key hash and
  every walk step passes the job's :class:`~tahoe_governor.backup.job_throttle.JobThrottle`
  (its bucket, suspension, abort and CPU-gate seam); immutable directories are
  uploaded through the same governed uploadable, so they count against the
  job's cap too;
- up to ``concurrency`` uploads (files and directories) are in flight at once,
  a large file counting as several (:mod:`~tahoe_governor.backup.upload_slots`);
  while a directory's last files finish, the walk goes on to its siblings;
- the hash pass runs in the thread pool, in pieces.

A run ends in a :class:`BackupResult`, or fails with :class:`BackupCancelled`
(``cancel``), :class:`BackupFailed` (an upload or a grid operation failed; every
file finished before that is in the backupdb, so the next run skips it),
:class:`~tahoe_governor.backup.target.TargetError` or :class:`SourceError`.

:class:`BackupWalker` composes the parts of a run and makes the backupdb's
decisions: :class:`~tahoe_governor.backup.tree_walk.TreeWalk` walks the local
tree, :class:`~tahoe_governor.backup.grid_operations.GridOperations` does the
uploads, directories and checks on the grid, and
:class:`~tahoe_governor.backup.completion.CompletionTracker` keeps what is in
flight, when each directory is done, and when the run is stopped or settled.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, tzinfo
from functools import partial
from typing import Any

import attrs
from allmydata.util.fileutil import abspath_expanduser_unicode
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from tahoe_governor.backup.archives import apply_retention
from tahoe_governor.backup.backupdb import certain_reuse, check_file_stat, recorded_children
from tahoe_governor.backup.completion import CompletionTracker, DirectoryJob
from tahoe_governor.backup.grid_operations import (
    Child,
    GridOperations,
    NodeGridOperations,
    UnreadableSource,
)
from tahoe_governor.backup.job_throttle import InFlightAborted, JobThrottle, Lease
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.run_errors import (
    BackupCancelled,
    BackupFailed,
    SourceError,
    Stopping,
    describe,
)
from tahoe_governor.backup.target import BackupTarget, archive_name, link_snapshot, open_target
from tahoe_governor.backup.tree import (
    DirectoryHandle,
    ExcludePatterns,
    TreeEstimate,
    list_directory,
    local_metadata,
)
from tahoe_governor.backup.tree_walk import ListDirectory, Record, TreeWalk, no_records
from tahoe_governor.backup.upload_slots import UploadSlots
from tahoe_governor.backup.uploadable import ByteSource, FileSource, RunBlocking, SourceChanged
from tahoe_governor.policy.retention import KeepRule
from tahoe_governor.status import BackupProgress, private_field
from tahoe_governor.throttle.reactor_clock import ReactorClock

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BackupCancelled",
    "BackupFailed",
    "BackupResult",
    "BackupWalker",
    "SourceError",
]

DEFAULT_CONCURRENCY = 32
"""Upload slots per job unless told otherwise: 32 small files in flight, or 8 large ones."""

CHANGED_FILE_ATTEMPTS = 3
"""Uploads of a file that keeps changing while it is read, before it is skipped as unreadable."""

log = Logger()


@attrs.frozen(kw_only=True)
class BackupResult:
    """A finished run: the snapshot's name under ``Archives/`` and the final counts."""

    archive_name: str
    """The ``Archives/`` entry, e.g. ``2026-11-26_22:00:05Z`` (public)."""
    progress: BackupProgress
    private_snapshot_cap: bytes = private_field(repr=False)
    """Private: the read-only cap of the new snapshot (also linked as ``Latest``)."""
    forgotten: tuple[str, ...] = ()
    """Archives the retention rule unlinked from ``Archives/`` after this run."""
    retention_failure: str | None = None
    """Why the retention rule could not be applied (the kind of error), ``None`` if it was."""

    @property
    def detail(self) -> str:
        """The run's note in the state database: the snapshot's name."""
        return self.archive_name

    @property
    def skipped_any(self) -> bool:
        """True if anything was skipped (``tahoe backup`` then exits with 2)."""
        return self.progress.skipped.total > 0


class BackupWalker:
    """One run of a backup job: ``source`` (a local directory) to ``target`` on the grid.

    :param reactor: the clock for every timer and timestamp (and, unless
        ``run_blocking`` is given, IReactorThreads for the hash pass).
    :param client: the node (``allmydata.client._Client``) or anything with what
        the walker uses of it: ``upload(uploadable)``,
        ``create_node_from_uri(writecap, readcap=None, name=...)`` and
        ``convergence`` (the convergence secret, bytes).
    :param source: the local directory to back up (made absolute as ``tahoe
        backup`` does, so backupdb paths match).
    :param target: from :func:`~tahoe_governor.backup.target.resolve_target`.
    :param backupdb: an open ``BackupDB_v2``
        (:func:`~tahoe_governor.backup.backupdb.open_backupdb`).
    :param close_backupdb: close ``backupdb``'s connection when the run ends,
        however it ends (for a backupdb opened for this run alone).
    :param throttle: the job's :class:`JobThrottle` (kept across runs by the
        caller, who suspends, resumes, aborts and sets its rate); None for an
        unlimited one of the walker's own.
    :param exclude: glob patterns, as ``tahoe backup --exclude``.
    :param concurrency: upload slots (>= 1): small uploads in flight at once; a
        large one takes :data:`~tahoe_governor.backup.upload_slots.LARGE_UPLOAD_WEIGHT`.
    :param estimate: what the tree holds, if known (e.g. the last run's
        figures); None starts a cheap estimate walk in the thread pool.
    :param ignore_timestamps: as ``tahoe backup --ignore-timestamps``.
    :param run_blocking: ``run_blocking(f, *args) -> Deferred``, to run
        blocking work (hashing, the estimate walk) off the reactor thread.
    :param open_file: ``open_file(name, directory_fd, listed)`` opens a local
        file, ``name`` in its open directory, as a :class:`ByteSource` (OSError
        if it cannot; :class:`~tahoe_governor.backup.uploadable.SourceChanged` if
        it is not the version of ``listed``, its lstat); :class:`FileSource`
        unless a test says otherwise. It runs in the thread pool.
    :param list_directory: lists an open directory (its fd), sorted by name,
        each entry's lstat cached (OSError if it cannot);
        :func:`~tahoe_governor.backup.tree.list_directory` by default. It runs
        in the thread pool.
    :param grid: the grid operations; by default
        :class:`~tahoe_governor.backup.grid_operations.NodeGridOperations` on
        ``client`` and the job's throttle. (Opening the target and linking the
        snapshot always use ``client``.)
    """

    def __init__(
        self,
        *,
        reactor: ReactorClock,
        client: Any,
        source: str,
        target: BackupTarget,
        backupdb: Any,
        throttle: JobThrottle | None = None,
        exclude: Iterable[str] | ExcludePatterns = (),
        concurrency: int = DEFAULT_CONCURRENCY,
        estimate: TreeEstimate | None = None,
        ignore_timestamps: bool = False,
        run_blocking: RunBlocking | None = None,
        open_file: Callable[[str, int, os.stat_result], ByteSource] = FileSource,
        list_directory: ListDirectory = list_directory,
        grid: GridOperations | None = None,
        close_backupdb: bool = False,
        keep: KeepRule | None = None,
        keep_zone: tzinfo = UTC,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if not isinstance(source, str) or not source:
            raise ValueError(f"source must be a local directory path, got {source!r}")
        if not isinstance(target, BackupTarget):
            raise TypeError(f"target must be a BackupTarget (see resolve_target), got {target!r}")
        if run_blocking is None:
            get_pool = getattr(reactor, "getThreadPool", None)
            if get_pool is None:
                raise TypeError("reactor has no thread pool (IReactorThreads): pass run_blocking")
            run_blocking = partial(_in_pool, reactor, get_pool)
        self._reactor = reactor
        self._client = client
        self._source = abspath_expanduser_unicode(source)
        self._target = target
        self._backupdb = backupdb
        self._close_backupdb = close_backupdb
        self._keep = keep
        self._keep_zone = keep_zone
        self.throttle = throttle if throttle is not None else JobThrottle(reactor)
        """The job's throttle: suspend, resume, abort_in_flight and set_wire_rate go here."""
        self._exclude = (exclude if isinstance(exclude, ExcludePatterns)
                         else ExcludePatterns(exclude))
        self._slots = UploadSlots(concurrency)
        self._estimate = estimate
        self._use_timestamps = not ignore_timestamps
        self._run_blocking = run_blocking
        self._open_file = open_file
        self._grid: GridOperations = (grid if grid is not None
                                      else NodeGridOperations(client, self.throttle, run_blocking))
        self._counters = ProgressCounters(reactor.seconds())
        if estimate is not None:
            self._counters.estimated_files = estimate.files
            self._counters.estimated_bytes = estimate.bytes
        self._estimate_stop = threading.Event()
        self._db_lock = threading.Lock()
        self._completion = CompletionTracker(
            throttle=self.throttle, slots=self._slots, finish_directory=self._directory_task,
            on_stop=self._estimate_stop.set)
        self._tree = TreeWalk(
            clock=reactor, counters=self._counters, exclude=self._exclude,
            throttle=self.throttle, completion=self._completion, visit_file=self._file,
            records=(partial(_locked, self._db_lock, recorded_children, backupdb)
                     if self._use_timestamps else no_records),
            run_blocking=run_blocking, list_directory=list_directory)
        self._started = False

    # -- the public surface --------------------------------------------------

    def run(self) -> Deferred[BackupResult]:
        """Start the run (once): a :class:`BackupResult`, or a failure (see the module doc)."""
        if self._started:
            raise RuntimeError("a BackupWalker runs once; make a new one for the next run")
        self._started = True
        d = Deferred.fromCoroutine(self._run())
        if self._close_backupdb:
            d.addBoth(self._backupdb_closed)
        return d

    def _backupdb_closed(self, outcome: Any) -> Any:
        self._backupdb.connection.close()
        return outcome

    def progress(self) -> BackupProgress:
        """A frozen snapshot of the run's progress now."""
        return self._counters.snapshot(self._reactor.seconds(), self.throttle.suspended)

    def cancel(self) -> None:
        """End the run: in-flight uploads are aborted, nothing new starts, and
        :meth:`run`'s Deferred fails with :class:`BackupCancelled` once all has
        stopped. Finished files stay in the backupdb. Works while suspended."""
        self._completion.stop(BackupCancelled("backup run cancelled"),
                              BackupCancelled("backup run cancelled"))

    # -- the run -------------------------------------------------------------

    async def _run(self) -> BackupResult:
        completion = self._completion
        lease = completion.new_lease(abortable=False)
        try:
            if not await self._run_blocking(os.path.isdir, self._source):
                raise SourceError(f"the backup source {self._source} is not a directory")
            if self._estimate is None:
                self._tree.start_estimate(self._source, self._run_blocking, self._estimate_stop)
            await self.throttle.admit(lease)
            dirs = await open_target(self._client, self._target)
            self._counters.phase = "walking"
            root = DirectoryJob(path=self._source, name=None, parent=None)
            await self._tree.walk(root, lease)
            await completion.settled()
            completion.raise_if_stopped()
            assert completion.root_child is not None
            self._counters.phase = "linking"
            await self.throttle.admit(lease)
            name = archive_name(self._reactor.seconds())
            _kind, snapshot, _metadata = completion.root_child
            await link_snapshot(self._client, dirs, snapshot, name)
            forgotten, retention_failure = await self._forget_old_archives(dirs)
            self._counters.phase = "finished"
            return BackupResult(archive_name=name, progress=self.progress(),
                                private_snapshot_cap=snapshot, forgotten=forgotten,
                                retention_failure=retention_failure)
        except Exception as e:
            if completion.final_error is None:
                cause = Failure()
                final = e if _is_own_error(e) else BackupFailed(describe(cause), cause)
                completion.stop(final, final if isinstance(final, BackupCancelled) else Stopping())
            await completion.settled()
            self._counters.phase = ("cancelled"
                                    if isinstance(completion.final_error, BackupCancelled)
                                    else "failed")
            assert completion.final_error is not None
            raise completion.final_error from None
        finally:
            self._estimate_stop.set()
            completion.drop_lease(lease)

    async def _forget_old_archives(self, dirs: Any) -> tuple[tuple[str, ...], str | None]:
        """Apply the retention rule after linking; a failure is reported, not raised."""
        if self._keep is None:
            return (), None
        try:
            forgotten = await apply_retention(dirs.target, dirs.archives, self._keep,
                                              self._keep_zone)
        except Exception as e:
            # The type only: a grid error's message may hold a storage index or cap.
            why = f"the retention rule could not be applied ({type(e).__name__})"
            log.warn("backup: {why}; the next completed run applies it again", why=why)
            return (), why
        if forgotten:
            log.info("backup: retention unlinked {n} archive(s) from Archives/: {names}",
                     n=len(forgotten), names=", ".join(forgotten))
        return forgotten, None

    async def _file(self, job: DirectoryJob, name: str, path: str,
                    record: Record | None, st: os.stat_result | None) -> None:
        """Reuse the file at once if the backupdb allows, or start a task to check/upload it.

        ``st`` is the file's lstat, taken by its directory's listing (None: it
        could not be, so the file is unreadable). ``record`` is the file's
        backupdb record read with its directory's: when it makes
        ``check_file``'s answer certain (unchanged, checked recently) that
        answer is taken without asking; otherwise ``check_file`` decides.
        """
        if st is None:
            self._counters.skip("unreadable", False, 0, self._reactor.seconds())
            return
        metadata = local_metadata(st)
        cap = certain_reuse(record, st, time.time())  # the backupdb's own clock
        if cap is not None:
            self._counters.reused_file(st.st_size, self._reactor.seconds())
            job.add(name, ("filenode", cap, metadata))
            return
        try:
            decision = await self._in_db(check_file_stat, self._backupdb, path, st,
                                         self._use_timestamps)
        except OSError:
            self._counters.skip("unreadable", False, 0, self._reactor.seconds())
            return
        cap = decision.was_uploaded()
        if cap and not decision.should_check():
            self._counters.reused_file(st.st_size, self._reactor.seconds())
            job.add(name, ("filenode", cap, metadata))
            return
        slots = await self._slots.acquire(st.st_size)
        if self._completion.final_error is not None:
            self._slots.release(slots)
            self._completion.raise_if_stopped()
        assert job.handle is not None
        job.handle.hold()  # the task opens the file relative to it
        self._completion.start(
            job, name, self._file_task(job.handle, name, path, st, decision, metadata), slots)

    async def _file_task(self, directory: DirectoryHandle, name: str, path: str,
                         st: os.stat_result, decision: Any,
                         metadata: dict[str, Any]) -> Child | None:
        """Check or upload a file; if it changes while it is read, start it over
        (:data:`CHANGED_FILE_ATTEMPTS` in all, then it is skipped as unreadable)."""
        counters = self._counters
        counters.start_file(path)
        outcome = "failed"
        size = st.st_size
        lease = self._completion.new_lease(abortable=False)
        try:
            for attempt in range(1, CHANGED_FILE_ATTEMPTS + 1):
                try:
                    outcome, child = await self._check_or_upload(
                        directory, name, path, st, decision, metadata, lease)
                    return child
                except UnreadableSource as e:
                    changed = isinstance(e.args[0], SourceChanged)
                    if not changed or attempt == CHANGED_FILE_ATTEMPTS:
                        log.info("backup: skipped unreadable file {path!r}: {reason}",
                                 path=path, reason=str(e.args[0]))
                        outcome = "unreadable"
                        return None
                # start over: stat, decide and open the file again (its new version)
                counters.restart_file(path)
                assert directory.fd is not None
                try:
                    st = await self._run_blocking(_lstat_at, directory.fd, name)
                except OSError:
                    outcome = "unreadable"
                    return None
                size = st.st_size
                metadata = local_metadata(st)
                decision = await self._in_db(check_file_stat, self._backupdb, path, st,
                                             self._use_timestamps)
            raise AssertionError("unreachable")
        except (BackupCancelled, Stopping, InFlightAborted):
            outcome = "cancelled"
            raise
        finally:
            directory.release()
            self._completion.drop_lease(lease)
            counters.end_file(path, outcome, size, self._reactor.seconds())

    async def _check_or_upload(self, directory: DirectoryHandle, name: str, path: str,
                               st: os.stat_result, decision: Any, metadata: dict[str, Any],
                               lease: Lease) -> tuple[str, Child]:
        """The backupdb's ``decision`` carried out: reuse, re-check, or upload (its outcome
        and child entry); :class:`UnreadableSource` if the file cannot be read or changed."""
        cap = decision.was_uploaded()
        if cap and not decision.should_check():
            return "reused", ("filenode", cap, metadata)
        if cap:  # the backupdb's periodic re-check of an old cap
            await self.throttle.admit(lease)
            healthy, results = await self._grid.check(cap)
            self._counters.files_checked += 1
            if healthy:
                await self._in_db(decision.did_check_healthy, results)
                return "reused", ("filenode", cap, metadata)
        cap = await self._governed(partial(self._upload_file, directory, name, st, path), path,
                                   st.st_size)
        await self._in_db(decision.did_upload, cap)
        return "uploaded", ("filenode", cap, metadata)

    async def _upload_file(self, directory: DirectoryHandle, name: str, listed: os.stat_result,
                           path: str, lease: Lease) -> bytes:
        try:
            assert directory.fd is not None
            source = await self._run_blocking(self._open_file, name, directory.fd, listed)
        except OSError as e:
            raise UnreadableSource(e) from e
        try:
            return await self._grid.upload(
                source, lease, on_hashed=self._counters.hashed_bytes,
                on_read=partial(self._handed, path))
        finally:
            source.close()

    async def _directory_task(self, job: DirectoryJob) -> Child:
        """Reuse or create the immutable directory for ``job``'s children."""
        counters = self._counters
        lease = self._completion.new_lease(abortable=False)
        try:
            await self.throttle.admit(lease)
            # the fstat of the directory the walk opened (tahoe backup stats the
            # path again after the children; the directory may be closed by now)
            st = job.listing_stat
            metadata = local_metadata(st) if st is not None else {}
            compare = {name: child[1] for name, child in job.children.items()}
            decision = await self._in_db(self._backupdb.check_directory, compare)
            dircap = decision.was_created()
            if dircap:
                healthy = True
                if decision.should_check():
                    healthy, results = await self._grid.check(dircap)
                    counters.directories_checked += 1
                    if healthy:
                        await self._in_db(decision.did_check_healthy, results)
                if healthy:
                    counters.directories_reused += 1
                    return ("dirnode", dircap, metadata)
            dircap = await self._create_directory(job.children)
            await self._in_db(decision.did_create, dircap)
            counters.directories_created += 1
            return ("dirnode", dircap, metadata)
        finally:
            self._completion.drop_lease(lease)

    async def _create_directory(self, children: dict[str, Child]) -> bytes:
        """Make an immutable directory of ``children`` through the job's throttle.

        It holds upload slots as a file of its packed size would.
        """
        packed = self._grid.pack_directory(children)
        slots = await self._slots.acquire(len(packed))
        try:
            return await self._governed(
                partial(self._grid.create_immutable_directory, packed,
                        on_hashed=self._counters.hashed_bytes), None, len(packed))
        finally:
            self._slots.release(slots)

    async def _governed(self, upload: Callable[[Lease], Any], path: str | None,
                        size: int) -> bytes:
        """``upload(lease)`` under a new abortable lease; start it over if aborted in flight.

        An abort (``throttle.abort_in_flight``) while the run goes on means
        "drop the partial upload and do it again once resumed"; ``path`` is the
        file's, to count the restart (None for a directory).
        """
        while True:
            started = await self._wait_to_start_upload(size)
            lease = self._completion.new_lease(abortable=True)
            self.throttle.upload_starting(lease, started)
            try:
                cap: bytes = await upload(lease)
                return cap
            except UnreadableSource:
                raise
            except Exception:
                if (isinstance(lease.error, InFlightAborted)
                        and self._completion.final_error is None):
                    if path is not None:
                        self._counters.restart_file(path)
                    await self._wait_until_resumed()
                    continue
                raise
            finally:
                self._completion.drop_lease(lease)

    async def _wait_to_start_upload(self, size: int) -> Callable[[], None]:
        """Hold a new upload while a capped peer's queue is long (the throttle's
        backlog gate): files then finish one after another at the cap's pace, and
        an interruption loses seconds of work, not every file in flight."""
        lease = self._completion.new_lease(abortable=False)
        try:
            return await self.throttle.wait_to_start_upload(lease, size)
        finally:
            self._completion.drop_lease(lease)

    async def _wait_until_resumed(self) -> None:
        lease = self._completion.new_lease(abortable=False)
        try:
            await self.throttle.admit(lease)
        finally:
            self._completion.drop_lease(lease)

    def _in_db(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``f(*args)``, a backupdb call, in the thread pool, one at a time."""
        return self._run_blocking(_locked, self._db_lock, f, *args)

    def _handed(self, path: str, n: int) -> None:
        self._counters.read_bytes(path, n, self._reactor.seconds())


def _in_pool(reactor: Any, get_pool: Callable[[], Any], f: Callable[..., Any],
             *args: Any) -> Deferred[Any]:
    return deferToThreadPool(reactor, get_pool(), f, *args)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _locked(lock: threading.Lock, f: Callable[..., Any], *args: Any) -> Any:
    # one connection, one cursor (BackupDB_v2's): its queries must not interleave
    with lock:
        return f(*args)


def _is_own_error(e: BaseException) -> bool:
    from tahoe_governor.backup.target import TargetError

    return isinstance(e, BackupCancelled | BackupFailed | SourceError | TargetError)
