"""``tahoe-governor restore NODEDIR JOB DEST``: a job's archive back on disk, through the node.

Finds the job's target (``bN.target`` in tahoe.cfg; or JOB is itself a
target, ``alias:path`` or a directory cap, as on a new machine whose
tahoe.cfg has no jobs), picks ``--archive`` (``latest`` by default), plans
every file (:mod:`~tahoe_governor.cli.restore_plan`), then downloads several
files at once (``--parallel``, at most a quarter of them large) through the
running governed node, so every ``down`` cap of the node and its peers holds,
and ``--bandwidth`` caps this restore alone. A tqdm bar on the terminal shows
files, bytes and the ETA.

Exit status: 0 when every file is restored, 1 on an error (nothing
half-written is left; finished files are kept and recorded), 130 when
interrupted. Run again, it continues: what is finished and verified is
skipped, not downloaded again.
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import attrs
from tqdm import tqdm

from tahoe_governor.cli.demo import positive_int
from tahoe_governor.cli.node_api import CommandError, GovernorClient
from tahoe_governor.cli.node_directory import add_node_directory
from tahoe_governor.cli.restore_archive import (
    LATEST_WORD,
    Archive,
    ArchiveEntry,
    DownloadError,
    NodeWebAPI,
    RestoreError,
    WebAPI,
    archive_files,
    find_archive,
    known_names,
)
from tahoe_governor.cli.restore_manifest import RestoreManifest, manifest_path
from tahoe_governor.cli.restore_plan import RestorePlan, local_path, plan_restore
from tahoe_governor.cli.restore_rate import SharedRate
from tahoe_governor.cli.restore_writer import (
    DiskFullError,
    StopRequested,
    remove_stale_partials,
    set_mtime,
    write_restored_file,
)
from tahoe_governor.web.human_units import format_bytes

DEFAULT_PARALLEL = 32
"""Files in flight unless told otherwise: each small file waits on several round trips
between the node and the servers, and the more are in flight the more every wakeup of
those processes carries (less CPU per file)."""
LARGE_FILE_BYTES = 1024 * 1024
"""Files of more than one segment count as large: Tahoe's default immutable segment is
``allmydata.interfaces.DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE``, 1 MiB (not imported: the
command starts faster without Tahoe's interfaces)."""
LARGE_FILE_SHARE = 4
"""At most one in this many of the files in flight is large: a large file keeps its
connections busy alone and holds the node's segment buffers meanwhile."""
EXIT_INTERRUPTED = 130
CONFLICTS_SHOWN = 10
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@attrs.frozen
class RestoreRequest:
    """What the command line asks for."""

    nodedir: str
    job: str
    dest: Path
    archive: str = LATEST_WORD
    subpath: tuple[str, ...] = ()
    overwrite: bool = False
    bandwidth: float | None = None
    """Bytes/s for this restore alone; None: only the node's and peers' caps."""
    parallel: int = DEFAULT_PARALLEL


@attrs.define
class RestoreOutcome:
    """What a run did, counted as it went."""

    files_done: int = 0
    bytes_done: int = 0
    failures: list[str] = attrs.Factory(list)
    disk_full: str | None = None
    interrupted: bool = False


def job_target(nodedir: str, job: str) -> str:
    """The target of ``job`` as written: a job name's in tahoe.cfg, or ``job`` itself when it
    is a target (``alias:path`` or a cap: a job name never holds ``:``)."""
    if ":" in job:
        return job
    from tahoe_governor.policy.config import load_policy
    from tahoe_governor.policy.errors import ConfigError
    from tahoe_governor.policy.local_zone import local_zone

    try:
        policy = load_policy(nodedir, local_zone())
    except ConfigError as e:
        problems = "; ".join(str(p) for p in e.problems)
        raise RestoreError(f"{nodedir}/tahoe.cfg: {problems}") from None
    names = [j.name for j in policy.jobs]
    if job not in names:
        raise RestoreError(
            f"unknown job {job!r}: expected one of {known_names(names)} ([backups] in "
            f"{nodedir}/tahoe.cfg), or a backup target such as backup:photos or a directory cap")
    return policy.job(job).target


def resolve_archive(api: WebAPI, request: RestoreRequest) -> tuple[Archive, str]:
    """The archive the request names and the label of its target."""
    from tahoe_governor.backup.target import TargetError, resolve_target_in_nodedir

    try:
        resolved = resolve_target_in_nodedir(job_target(request.nodedir, request.job),
                                             request.nodedir)
    except TargetError as e:
        raise RestoreError(str(e)) from None
    return find_archive(api, resolved.private_rootcap.decode("ascii"), resolved.path,
                        resolved.label, request.archive), resolved.label


def check_room(dest: Path, needed: int) -> None:
    """Refuse to start when DEST's file system has less room than the files need."""
    folder = dest
    while not folder.exists():
        folder = folder.parent
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise RestoreError(f"{dest}: the files to restore need {format_bytes(needed)} and its "
                           f"file system has {format_bytes(free)} free: make room, or restore "
                           "part of the archive (--path)")


def large_files_at_once(parallel: int) -> int:
    """How many files above :data:`LARGE_FILE_BYTES` a restore downloads at once."""
    return max(1, parallel // LARGE_FILE_SHARE)


def prepare_directories(dest: Path, plan: RestorePlan) -> None:
    """Create every directory of the plan (and DEST/SUBPATH's parents for one file),
    removing what killed restores left in them."""
    folders = {local_path(dest, entry) for entry in plan.directories}
    folders.update(local_path(dest, entry).parent for entry in plan.downloads)
    for folder in sorted(folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RestoreError(f"{folder}: cannot create it ({e.strerror})") from None
        remove_stale_partials(folder)


class Downloads:
    """Worker threads that fetch the plan's files and report on one queue to the caller."""

    def __init__(self, api: WebAPI, dest: Path, manifest: RestoreManifest, rate: SharedRate,
                 parallel: int) -> None:
        self._api, self._dest, self._manifest, self._rate = api, dest, manifest, rate
        self._parallel = max(1, parallel)
        self.stop = threading.Event()
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._todo: queue.Queue[ArchiveEntry] = queue.Queue()
        self._large = threading.BoundedSemaphore(large_files_at_once(self._parallel))

    def start(self, files: tuple[ArchiveEntry, ...]) -> int:
        """Start fetching ``files``; how many threads report (each ends with ``exit``)."""
        for entry in files:
            self._todo.put(entry)
        threads = min(self._parallel, len(files))
        for _ in range(threads):
            threading.Thread(target=self._work, daemon=True).start()
        return threads

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    entry = self._todo.get_nowait()
                except queue.Empty:
                    return
                if entry.size <= LARGE_FILE_BYTES:
                    self._fetch(entry)
                elif self._acquire_large():
                    try:
                        self._fetch(entry)
                    finally:
                        self._large.release()
        finally:
            close = getattr(self._api, "close", None)
            if close is not None:
                close()
            self.events.put(("exit", None))

    def _acquire_large(self) -> bool:
        """Wait for a large file's turn; False when the restore stops meanwhile."""
        while not self.stop.is_set():
            if self._large.acquire(timeout=0.2):
                return True
        return False

    def _fetch(self, entry: ArchiveEntry) -> None:
        def on_bytes(n: int) -> None:
            self.events.put(("bytes", n))

        try:
            with self._api.open_file(entry.private_cap) as stream:
                write_restored_file(stream, local_path(self._dest, entry), entry.label,
                                    entry.private_cap, entry.size, entry.mtime,
                                    self._manifest, self._rate, self.stop, on_bytes)
        except StopRequested:
            return
        except DiskFullError as e:
            self.stop.set()
            self.events.put(("disk_full", str(e)))
            return
        except (DownloadError, OSError, ValueError, http.client.HTTPException) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.events.put(("failed", f"{entry.label}: {why}"))
            return
        self.events.put(("done", entry))


def run_downloads(downloads: Downloads, plan: RestorePlan, bar: Any) -> RestoreOutcome:
    """Fetch the plan's files, updating ``bar``, until done, a full disk, or Ctrl-C.

    Ctrl-C (SIGINT) and SIGTERM stop the downloads, which remove their temporary files;
    a second one while they stop is ignored."""
    outcome = RestoreOutcome()

    def stop(signum: int, frame: object) -> None:
        outcome.interrupted = True
        downloads.stop.set()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        _follow(downloads, plan, bar, outcome)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return outcome


def _follow(downloads: Downloads, plan: RestorePlan, bar: Any, outcome: RestoreOutcome) -> None:
    running = downloads.start(plan.downloads)
    while running:
        try:
            event, value = downloads.events.get(timeout=0.5)
        except queue.Empty:
            continue
        if event == "bytes":
            bar.update(value)
        elif event == "done":
            outcome.files_done += 1
            outcome.bytes_done += value.size
            bar.set_postfix_str(f"{outcome.files_done}/{len(plan.downloads)} files")
        elif event == "failed":
            outcome.failures.append(value)
        elif event == "disk_full":
            outcome.disk_full = outcome.disk_full or value
        elif event == "exit":
            running -= 1


def restore(request: RestoreRequest, api: WebAPI, out: TextIO, err: TextIO,
            clock: Callable[[], float] = time.monotonic) -> int:
    """Run the restore ``request`` through ``api``; the exit status (see the module doc)."""
    archive, label = resolve_archive(api, request)
    unsafe: list[str] = []
    entries = archive_files(api, archive, request.subpath, unsafe.append, request.parallel)
    dest = request.dest
    manifest = RestoreManifest(manifest_path(request.nodedir, dest), dest)
    plan = plan_restore(entries, dest, manifest, request.overwrite)
    if plan.conflicts:
        shown = "\n  ".join(plan.conflicts[:CONFLICTS_SHOWN])
        more = len(plan.conflicts) - CONFLICTS_SHOWN
        raise RestoreError(
            f"{dest} already has {len(plan.conflicts)} of the archive's paths, not as a "
            f"restore of this archive wrote them:\n  {shown}"
            + (f"\n  (and {more} more)" if more > 0 else "")
            + "\nnothing was changed: restore into an empty directory, or add --overwrite "
            "to replace those files")
    check_room(dest, plan.download_bytes)
    which = f"{archive.name} (Latest)" if archive.is_latest else archive.name
    print(f"Restoring archive {which} of {label} into {dest}", file=out)
    files = "1 file" if len(plan.downloads) == 1 else f"{len(plan.downloads)} files"
    print(f"{files} to download ({format_bytes(plan.download_bytes)}), "
          f"{len(plan.verified)} already restored and verified", file=out)
    for path in plan.changed:
        print(f"  changed since it was restored, downloading it again: {path}", file=out)
    for name in unsafe:
        print(f"  skipped, not a usable local name: {name}", file=err)
    prepare_directories(dest, plan)
    started = clock()
    downloads = Downloads(api, dest, manifest, SharedRate(request.bandwidth, clock),
                          request.parallel)
    with tqdm(total=plan.download_bytes, unit="B", unit_scale=True, file=err,
              desc="restore", dynamic_ncols=True, disable=None) as bar:
        outcome = run_downloads(downloads, plan, bar)
    return report(outcome, plan, dest, clock() - started, out, err)


def report(outcome: RestoreOutcome, plan: RestorePlan, dest: Path, seconds: float,
           out: TextIO, err: TextIO) -> int:
    """Print how the run ended; set directory times when it is complete; the exit status."""
    again = "run the same command again to continue (finished files are verified, " \
            "not downloaded again)"
    done = (f"{outcome.files_done} of {len(plan.downloads)} files "
            f"({format_bytes(outcome.bytes_done)})")
    if outcome.interrupted:
        print(f"Interrupted after restoring {done}: {again}.", file=err)
        return EXIT_INTERRUPTED
    if outcome.disk_full:
        print(f"{outcome.disk_full}: no space left on the device after restoring {done}; "
              f"nothing half-written was left. Make room, then {again}.", file=err)
        return 1
    missing = len(plan.downloads) - outcome.files_done - len(outcome.failures)
    if missing > 0:  # a download thread that ended on something unforeseen
        outcome.failures.append(f"{missing} more files were not downloaded (see above)")
    if outcome.failures:
        failed = len(plan.downloads) - outcome.files_done
        print(f"Restored {done}; {failed} could not be downloaded:", file=err)
        for failure in outcome.failures[:CONFLICTS_SHOWN]:
            print(f"  {failure}", file=err)
        print(f"Check the grid ('tahoe-governor status'), then {again}.", file=err)
        return 1
    for entry in sorted(plan.directories, key=lambda e: len(e.path), reverse=True):
        set_mtime(local_path(dest, entry), entry.mtime)
    rate = outcome.bytes_done / seconds if seconds > 0 else 0.0
    print(f"Restored {done} in {seconds:.1f} s ({format_bytes(rate)}/s); "
          f"{len(plan.verified)} were already there and verified.", file=out)
    return 0


def _bandwidth(text: str) -> float | None:
    from tahoe_governor.policy.units import (
        ABSOLUTE_RATE_EXPECTED,
        UNLIMITED_WORD,
        ValueSyntaxError,
        parse_absolute_rate,
    )

    if text.strip() == UNLIMITED_WORD:
        return None
    try:
        return parse_absolute_rate(text).bytes_per_second
    except ValueSyntaxError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {ABSOLUTE_RATE_EXPECTED}, or unlimited") from None


def _local_directory(text: str) -> Path:
    return Path(os.path.abspath(os.path.expanduser(text)))


def _subpath(text: str) -> tuple[str, ...]:
    names = tuple(name for name in text.split("/") if name)
    if any(name in (".", "..") for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a path inside the archive, "
                                         "without '.' or '..'")
    return names


def add_restore_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``restore``."""
    parser = commands.add_parser(
        "restore", help="download an archive of a job through the running node",
        description="Restore an archive of JOB into DEST through the running governed node "
                    "(its down caps hold). Never replaces an existing file unless --overwrite; "
                    "run again after an interruption, it continues.")
    add_node_directory(parser)
    parser.add_argument("job", metavar="JOB",
                        help="the job's name in [backups], or its target (alias:path or a "
                             "directory cap), as on a new machine")
    parser.add_argument("dest", metavar="DEST", type=_local_directory,
                        help="the local directory to restore into (created if missing)")
    parser.add_argument("--archive", default=LATEST_WORD, metavar="TIMESTAMP|latest",
                        help="which archive (a name from 'tahoe-governor archives'); "
                             "default: latest")
    parser.add_argument("--path", dest="subpath", type=_subpath, default=(), metavar="SUBPATH",
                        help="restore only this file or directory of the archive (kept at "
                             "DEST/SUBPATH)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of DEST that this restore did not write")
    parser.add_argument("--bandwidth", type=_bandwidth, default=None, metavar="RATE",
                        help="cap this restore's download (200kbps, 1MB/s, ...), under the "
                             "node's own caps")
    parser.add_argument("--parallel", type=positive_int, default=DEFAULT_PARALLEL, metavar="N",
                        help=f"files downloaded at once (default {DEFAULT_PARALLEL}); at "
                             f"most 1 in {LARGE_FILE_SHARE} of them above 1 MiB")
    parser.set_defaults(func=_run_restore)


def _run_restore(args: argparse.Namespace, out: TextIO = sys.stdout,
                 err: TextIO = sys.stderr) -> int:
    request = RestoreRequest(args.nodedir, args.job, args.dest, args.archive, args.subpath,
                             args.overwrite, args.bandwidth, args.parallel)
    try:
        client = GovernorClient(args.nodedir)
        client.public_status()  # a governed node answers: its downloads are shaped
        return restore(request, NodeWebAPI(client.node_url), out, err)
    except (CommandError, RestoreError) as e:
        print(f"tahoe-governor restore: {e}", file=err)
        return 1
    except KeyboardInterrupt:
        print("Interrupted before any file was downloaded.", file=err)
        return EXIT_INTERRUPTED
    except ConnectionError as e:
        print(f"tahoe-governor restore: lost the node ({e.strerror or e}); is it running? "
              f"(start it with 'tahoe-governor run {args.nodedir}')", file=err)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"tahoe-governor restore: {where}{e.strerror or e}", file=err)
        return 1
