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
3. link the new root directory as ``Archives/<UTC time>`` and ``Latest``.

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
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import attrs
from allmydata import uri
from allmydata.dirnode import pack_children
from allmydata.monitor import Monitor
from allmydata.util.fileutil import abspath_expanduser_unicode
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from tahoe_governor.backup.backupdb import certain_reuse, recorded_children
from tahoe_governor.backup.job_throttle import InFlightAborted, JobThrottle, Lease
from tahoe_governor.backup.progress import ProgressCounters
from tahoe_governor.backup.target import BackupTarget, archive_name, link_snapshot, open_target
from tahoe_governor.backup.tree import (
    EntryKind,
    ExcludePatterns,
    TreeEstimate,
    classify,
    estimate_tree,
    is_decodable,
    list_directory,
    local_metadata,
)
from tahoe_governor.backup.upload_slots import UploadSlots
from tahoe_governor.backup.uploadable import (
    ByteSource,
    BytesSource,
    FileSource,
    GovernedUploadable,
    RunBlocking,
)
from tahoe_governor.status import BackupProgress, private_field

DEFAULT_CONCURRENCY = 32
"""Upload slots per job unless told otherwise: 32 small files in flight, or 8 large ones."""

Child = tuple[str, bytes, dict[str, Any]]
"""A directory entry as ``tahoe backup`` builds it: ("filenode"|"dirnode", cap, metadata)."""


class SourceError(Exception):
    """The source directory is missing, not a directory, or cannot be listed."""


class BackupCancelled(Exception):
    """The run was cancelled (:meth:`BackupWalker.cancel`)."""


class BackupFailed(Exception):
    """An upload or grid operation failed; the run stopped. ``cause`` is the first failure."""

    def __init__(self, message: str, cause: Failure) -> None:
        super().__init__(message)
        self.cause = cause


class _Stopping(Exception):
    """Fails the other activities of a run that is stopping after a failure."""


class _UnreadableSource(Exception):
    """The local file could not be opened or read (wraps the OSError)."""


@attrs.frozen(kw_only=True)
class BackupResult:
    """A finished run: the snapshot's name under ``Archives/`` and the final counts."""

    archive_name: str
    """The ``Archives/`` entry, e.g. ``2026-11-26_22:00:05Z`` (public)."""
    progress: BackupProgress
    private_snapshot_cap: bytes = private_field(repr=False)
    """Private: the read-only cap of the new snapshot (also linked as ``Latest``)."""

    @property
    def skipped_any(self) -> bool:
        """True if anything was skipped (``tahoe backup`` then exits with 2)."""
        return self.progress.skipped.total > 0


@attrs.define(eq=False)
class _DirectoryJob:
    """A directory being backed up: its children so far and what is still out."""

    path: str
    name: str | None
    parent: _DirectoryJob | None
    listing_stat: os.stat_result | None = None
    children: dict[str, Child] = attrs.Factory(dict)
    outstanding: int = 0
    listed: bool = False
    finishing: bool = False

    def add(self, name: str, child: Child) -> None:
        self.children[name] = child


class BackupWalker:
    """One run of a backup job: ``source`` (a local directory) to ``target`` on the grid.

    :param reactor: IReactorTime for every timer and timestamp (and, unless
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
    """

    def __init__(
        self,
        *,
        reactor: IReactorTime,
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
        self.throttle = throttle if throttle is not None else JobThrottle(reactor)
        """The job's throttle: suspend, resume, abort_in_flight and set_wire_rate go here."""
        self._exclude = (exclude if isinstance(exclude, ExcludePatterns)
                         else ExcludePatterns(exclude))
        self._slots = UploadSlots(concurrency)
        self._estimate = estimate
        self._use_timestamps = not ignore_timestamps
        self._run_blocking = run_blocking
        self._counters = ProgressCounters(reactor.seconds())
        if estimate is not None:
            self._counters.estimated_files = estimate.files
            self._counters.estimated_bytes = estimate.bytes
        self._estimate_stop = threading.Event()
        self._leases: set[Lease] = set()
        self._active = 0
        self._idle_waiters: list[Deferred[None]] = []
        self._final_error: BaseException | None = None
        self._lease_error: BaseException | None = None
        self._root_child: Child | None = None
        self._started = False

    # -- the public surface --------------------------------------------------

    def run(self) -> Deferred[BackupResult]:
        """Start the run (once): a :class:`BackupResult`, or a failure (see the module doc)."""
        if self._started:
            raise RuntimeError("a BackupWalker runs once; make a new one for the next run")
        self._started = True
        return Deferred.fromCoroutine(self._run())

    def progress(self) -> BackupProgress:
        """A frozen snapshot of the run's progress now."""
        return self._counters.snapshot(self._reactor.seconds(), self.throttle.suspended)

    def cancel(self) -> None:
        """End the run: in-flight uploads are aborted, nothing new starts, and
        :meth:`run`'s Deferred fails with :class:`BackupCancelled` once all has
        stopped. Finished files stay in the backupdb. Works while suspended."""
        self._stop(BackupCancelled("backup run cancelled"), BackupCancelled("backup run cancelled"))

    # -- the run -------------------------------------------------------------

    async def _run(self) -> BackupResult:
        lease = self._new_lease(abortable=False)
        try:
            if not os.path.isdir(self._source):
                raise SourceError(f"the backup source {self._source} is not a directory")
            self._start_estimate()
            await self.throttle.admit(lease)
            dirs = await open_target(self._client, self._target)
            self._counters.phase = "walking"
            root = _DirectoryJob(path=self._source, name=None, parent=None)
            await self._walk(root, lease)
            await self._settled()
            self._raise_if_stopped()
            assert self._root_child is not None
            self._counters.phase = "linking"
            await self.throttle.admit(lease)
            name = archive_name(self._reactor.seconds())
            _kind, snapshot, _metadata = self._root_child
            await link_snapshot(self._client, dirs, snapshot, name)
            self._counters.phase = "finished"
            return BackupResult(archive_name=name, progress=self.progress(),
                                private_snapshot_cap=snapshot)
        except Exception as e:
            if self._final_error is None:
                cause = Failure()
                final = e if _is_own_error(e) else BackupFailed(_describe(cause), cause)
                self._stop(final, final if isinstance(final, BackupCancelled) else _Stopping())
            await self._settled()
            self._counters.phase = ("cancelled" if isinstance(self._final_error, BackupCancelled)
                                    else "failed")
            assert self._final_error is not None
            raise self._final_error from None
        finally:
            self._estimate_stop.set()
            self._drop_lease(lease)

    async def _walk(self, job: _DirectoryJob, lease: Lease) -> None:
        """List ``job``'s directory and start (or finish) the work of every entry."""
        counters = self._counters
        try:
            job.listing_stat = os.stat(job.path)
            entries = list_directory(job.path)
        except OSError as e:
            if job.parent is None:
                raise SourceError(f"cannot list the backup source {job.path}: {e.strerror}") from e
            counters.skip("unreadable", True, 0, self._reactor.seconds())
            return
        if job.parent is not None:
            job.parent.outstanding += 1
        records = recorded_children(self._backupdb, job.path) if self._use_timestamps else {}
        for entry in entries:
            self._raise_if_stopped()
            await self.throttle.admit(lease)
            name = entry.name
            if self._exclude.excludes(name):
                counters.excluded += 1
                continue
            kind = classify(entry) if is_decodable(name) else EntryKind.UNDECODABLE
            if kind is EntryKind.DIRECTORY:
                await self._walk(_DirectoryJob(path=entry.path, name=name, parent=job), lease)
                continue
            if kind is EntryKind.UNDECODABLE and _is_dir(entry):
                counters.skip("undecodable", True, 0, self._reactor.seconds())
                continue
            counters.files_seen += 1
            if kind is EntryKind.FILE:
                await self._file(job, name, entry.path, records.get(name))
            else:
                counters.skip(kind.value, False, 0, self._reactor.seconds())
        job.listed = True
        self._maybe_finish(job)

    async def _file(self, job: _DirectoryJob, name: str, path: str,
                    record: tuple[Any, ...] | None) -> None:
        """Reuse the file at once if the backupdb allows, or start a task to check/upload it.

        ``record`` is the file's backupdb record read with its directory's: when
        it makes ``check_file``'s answer certain (unchanged, checked recently)
        that answer is taken without asking; otherwise ``check_file`` decides.
        """
        try:
            st = os.stat(path)
        except OSError:
            self._counters.skip("unreadable", False, 0, self._reactor.seconds())
            return
        metadata = local_metadata(st)
        cap = certain_reuse(record, st, time.time())  # the backupdb's own clock
        if cap is not None:
            self._counters.reused_file(st.st_size, self._reactor.seconds())
            job.add(name, ("filenode", cap, metadata))
            return
        try:
            decision = self._backupdb.check_file(path, self._use_timestamps)
        except OSError:
            self._counters.skip("unreadable", False, 0, self._reactor.seconds())
            return
        cap = decision.was_uploaded()
        if cap and not decision.should_check():
            self._counters.reused_file(st.st_size, self._reactor.seconds())
            job.add(name, ("filenode", cap, metadata))
            return
        slots = await self._slots.acquire(st.st_size)
        if self._final_error is not None:
            self._slots.release(slots)
            self._raise_if_stopped()
        self._start(job, name, self._file_task(path, st.st_size, decision, metadata), slots)

    async def _file_task(self, path: str, size: int, decision: Any,
                         metadata: dict[str, Any]) -> Child | None:
        counters = self._counters
        counters.start_file(path)
        outcome = "failed"
        lease = self._new_lease(abortable=False)
        try:
            cap = decision.was_uploaded()
            if cap:  # the backupdb's periodic re-check of an old cap
                await self.throttle.admit(lease)
                healthy, results = await self._check_health(cap)
                counters.files_checked += 1
                if healthy:
                    decision.did_check_healthy(results)
                    outcome = "reused"
                    return ("filenode", cap, metadata)
            cap = await self._upload(partial(FileSource, path), path)
            decision.did_upload(cap)
            outcome = "uploaded"
            return ("filenode", cap, metadata)
        except _UnreadableSource:
            outcome = "unreadable"
            return None
        except (BackupCancelled, _Stopping, InFlightAborted):
            outcome = "cancelled"
            raise
        finally:
            self._drop_lease(lease)
            counters.end_file(path, outcome, size, self._reactor.seconds())

    async def _directory_task(self, job: _DirectoryJob) -> Child:
        """Reuse or create the immutable directory for ``job``'s children."""
        counters = self._counters
        lease = self._new_lease(abortable=False)
        try:
            await self.throttle.admit(lease)
            st: os.stat_result | None
            try:
                st = os.stat(job.path)  # after the children, as tahoe backup does
            except OSError:
                st = job.listing_stat
            metadata = local_metadata(st) if st is not None else {}
            compare = {name: child[1] for name, child in job.children.items()}
            decision = self._backupdb.check_directory(compare)
            dircap = decision.was_created()
            if dircap:
                healthy = True
                if decision.should_check():
                    healthy, results = await self._check_health(dircap)
                    counters.directories_checked += 1
                    if healthy:
                        decision.did_check_healthy(results)
                if healthy:
                    counters.directories_reused += 1
                    return ("dirnode", dircap, metadata)
            dircap = await self._create_directory(job.children)
            decision.did_create(dircap)
            counters.directories_created += 1
            return ("dirnode", dircap, metadata)
        finally:
            self._drop_lease(lease)

    async def _create_directory(self, children: dict[str, Child]) -> bytes:
        """Upload an immutable directory of ``children`` through the job's throttle.

        The bytes are what ``nodemaker.create_immutable_directory`` uploads
        (``pack_children(..., deep_immutable=True)`` with the convergence
        secret), so the dircap is the one ``tahoe backup`` would get.
        """
        nodes = {
            name: (self._client.create_node_from_uri(None, cap, name=name), metadata)
            for name, (_kind, cap, metadata) in children.items()
        }
        packed = pack_children(nodes, None, deep_immutable=True)
        slots = await self._slots.acquire(len(packed))
        try:
            filecap = await self._upload(partial(BytesSource, packed), None)
        finally:
            self._slots.release(slots)
        dircap: bytes = uri.wrap_dirnode_cap(uri.from_string(filecap)).to_string()
        return dircap

    async def _upload(self, open_source: Callable[[], ByteSource], path: str | None) -> bytes:
        """Upload a source through the throttle; start it over if aborted in flight.

        Raises :class:`_UnreadableSource` if the local source could not be read.
        """
        counters = self._counters
        while True:
            try:
                source = open_source()
            except OSError as e:
                raise _UnreadableSource(e) from e
            lease = self._new_lease(abortable=True)
            on_read: Callable[[int], None] = (
                _ignore if path is None else partial(self._handed, path))
            uploadable = GovernedUploadable(
                source, self._client.convergence, self.throttle, lease, self._run_blocking,
                on_hashed=counters.hashed_bytes, on_read=on_read)
            try:
                results = await self._client.upload(uploadable)
                cap: bytes = results.get_uri()
                return cap
            except Exception:
                if uploadable.local_error is not None:
                    raise _UnreadableSource(uploadable.local_error) from None
                if isinstance(lease.error, InFlightAborted) and self._final_error is None:
                    if path is not None:
                        counters.restart_file(path)
                    await self._wait_until_resumed()
                    continue
                if lease.error is not None:
                    raise lease.error from None
                raise
            finally:
                source.close()
                self._drop_lease(lease)

    async def _check_health(self, cap: bytes) -> tuple[bool, Any]:
        """Check ``cap`` on the grid as ``tahoe backup``'s ``t=check`` does.

        A check that fails counts as unhealthy (``tahoe backup``: "can't check,
        so we must assume it's bad"); literal caps are always healthy.
        """
        try:
            node = self._client.create_node_from_uri(cap)
            results = await node.check(Monitor(), verify=False, add_lease=False)
        except Exception:
            return False, None
        return (results is None or bool(results.is_healthy())), results

    # -- task bookkeeping ------------------------------------------------------

    def _start(self, job: _DirectoryJob, name: str, work: Any, slots: int) -> None:
        self._active += 1
        job.outstanding += 1
        Deferred.fromCoroutine(work).addBoth(self._child_done, job, name, slots)

    def _child_done(self, result: Any, job: _DirectoryJob, name: str, slots: int) -> None:
        if slots:
            self._slots.release(slots)
        if isinstance(result, Failure):
            self._task_failed(result)
        elif result is not None:
            job.add(name, result)
        job.outstanding -= 1
        self._maybe_finish(job)
        self._task_ended()

    def _maybe_finish(self, job: _DirectoryJob) -> None:
        """Start the directory's own task once it is listed and all its children are in."""
        if job.finishing or not job.listed or job.outstanding or self._final_error is not None:
            return
        job.finishing = True
        self._active += 1
        Deferred.fromCoroutine(self._directory_task(job)).addBoth(self._directory_done, job)

    def _directory_done(self, result: Any, job: _DirectoryJob) -> None:
        if isinstance(result, Failure):
            self._task_failed(result)
        elif job.parent is None:
            self._root_child = result
        else:
            assert job.name is not None
            job.parent.add(job.name, result)
        if job.parent is not None:
            job.parent.outstanding -= 1
            self._maybe_finish(job.parent)
        self._task_ended()

    def _task_failed(self, failure: Failure) -> None:
        if failure.check(BackupCancelled, _Stopping, InFlightAborted):
            return  # a consequence of a stop already under way
        final = BackupFailed(_describe(failure), failure)
        self._stop(final, _Stopping("stopped after another failure"))

    def _task_ended(self) -> None:
        self._active -= 1
        if self._active == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _settled(self) -> Deferred[None]:
        """Fires when no task is running."""
        if self._active == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _stop(self, final: BaseException, lease_error: BaseException) -> None:
        if self._final_error is not None:
            return
        self._final_error = final
        self._lease_error = lease_error
        self._estimate_stop.set()
        for lease in list(self._leases):
            lease.fail(lease_error)

    def _raise_if_stopped(self) -> None:
        if self._lease_error is not None:
            raise self._lease_error

    def _new_lease(self, abortable: bool) -> Lease:
        lease = self.throttle.lease(abortable)
        self._leases.add(lease)
        if self._lease_error is not None:
            lease.fail(self._lease_error)
        return lease

    def _drop_lease(self, lease: Lease) -> None:
        self._leases.discard(lease)
        self.throttle.release(lease)

    async def _wait_until_resumed(self) -> None:
        lease = self._new_lease(abortable=False)
        try:
            await self.throttle.admit(lease)
        finally:
            self._drop_lease(lease)

    def _handed(self, path: str, n: int) -> None:
        self._counters.read_bytes(path, n, self._reactor.seconds())

    def _start_estimate(self) -> None:
        if self._estimate is not None:
            return
        d = self._run_blocking(estimate_tree, self._source, self._exclude, self._estimate_stop)

        def got(estimate: TreeEstimate) -> None:
            if not self._estimate_stop.is_set():  # a stopped walk counted only part
                self._counters.estimated_files = estimate.files
                self._counters.estimated_bytes = estimate.bytes

        d.addCallbacks(got, lambda _f: None)


def _ignore(_n: int) -> None:
    pass


def _in_pool(reactor: Any, get_pool: Callable[[], Any], f: Callable[..., Any],
             *args: Any) -> Deferred[Any]:
    return deferToThreadPool(reactor, get_pool(), f, *args)


def _is_own_error(e: BaseException) -> bool:
    from tahoe_governor.backup.target import TargetError

    return isinstance(e, BackupCancelled | BackupFailed | SourceError | TargetError)


def _describe(failure: Failure) -> str:
    return f"backup failed: {failure.type.__name__}: {failure.getErrorMessage()}"


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
