"""The demo from start to end: grid, sample tree, governed node, two backup runs, summary, cleanup.

:func:`run_demo` is ``tahoe-governor demo``. It works in a fresh temporary
directory: a local grid of three storage servers on 127.0.0.1, one of them
playing the parents' DSL server (nickname :data:`DSL_NICKNAME`); a sample
tree; a governed client node whose ``tahoe.cfg`` holds a ``[backups]`` job of
that tree and a ``[bandwidth]`` cap on the DSL peer. It starts the governor
in this process (``tahoe_governor.app.start_governor``), shows each
run live, modifies a few files and runs the job again (``run_now``) to show
the reuse, then prints the summary and the checks that make the exit status.

Whatever happens — an error, Ctrl-C, SIGTERM — the governor is stopped, then
the grid's processes, and the directory is removed (``--keep`` only delays
this until Ctrl-C). Blocking preparation runs before the reactor starts;
from then on, the reactor's own signal handling stops it, and a "before
shutdown" trigger stops the governor while the grid is still up.
"""

from __future__ import annotations

import math
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
from twisted.internet import defer, task
from twisted.internet.error import ReactorNotRunning

from tahoe_governor.demo.live_view import LiveView
from tahoe_governor.demo.local_grid import GridError, LocalGrid
from tahoe_governor.demo.run_report import (
    Check,
    RunReport,
    demo_checks,
    format_bytes,
    job_run,
    peer_usage,
    render_live,
    render_summary,
    run_completed,
)
from tahoe_governor.demo.sample_tree import (
    DEFAULT_FILES,
    DEFAULT_SEED,
    DEFAULT_TOTAL_BYTES,
    LITERAL_MAX_BYTES,
    SampleTree,
    generate_sample_tree,
    modify_files,
)

if TYPE_CHECKING:
    from tahoe_governor.status import GovernorStatus

DSL_NICKNAME = "parents-dsl"
"""The storage server behind the parents' slow line: the capped peer."""
SERVER_NICKNAMES = ("home-nas", DSL_NICKNAME, "friends-office")
JOB = "photos"
ALIAS = "demo"
SHARES = (2, 3, 3)
"""(needed, happy, total): each of the three servers holds one share of every file."""

#: Seconds the governor may take to start, and a run beyond its expected time.
START_TIMEOUT = 120.0
CONNECT_TIMEOUT = 60.0
RUN_SLACK = 90.0

#: ``start_governor(reactor, nodedir)``: a Deferred or coroutine giving the governor.
StartGovernor = Callable[[Any, str], Any]


@attrs.frozen
class DemoOptions:
    """What the command line may change; the defaults are the two-minute demo."""

    files: int = DEFAULT_FILES
    total_bytes: int = DEFAULT_TOTAL_BYTES
    seed: int = DEFAULT_SEED
    modify: int = 5
    """Files changed before the incremental run."""
    dsl_up: str | None = None
    """``peer.parents-dsl.up`` as written in tahoe.cfg; ``None``: sized to ``run_seconds``."""
    run_seconds: float = 45.0
    """How long the first run's bytes should take at the cap, when it is sized from the
    tree (the work each file costs besides its bytes comes on top)."""
    keep: bool = False
    refresh_seconds: float = 0.5


QUICK = {"files": 40, "total_bytes": 2_000_000, "modify": 3, "run_seconds": 8.0}
"""``--quick`` (for CI): a small tree, still a capped peer, well under a minute."""


class DemoFailed(Exception):
    """The demo could not go on; the message says why."""


@attrs.define
class DemoRecord:
    """What happened so far: the completed runs, the files modified, the first failure."""

    tree: SampleTree | None = None
    runs: list[RunReport] = attrs.Factory(list)
    modified: tuple[str, ...] = ()
    failure: str | None = None
    interrupted: bool = False
    log: Path | None = None
    """The governed node's log (Twisted's log of this process)."""

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason


def share_bytes_per_server(tree: SampleTree, needed: int) -> int:
    """Bytes of file data each server receives when every server holds one of the shares.

    A share carries ``size / needed`` of each file; files small enough to live
    in their cap (``URI:LIT``) send nothing. Hash trees and directories add a
    few percent, which :func:`sized_cap` leaves as margin.
    """
    return sum(-(-f.size // needed) for f in tree.files if f.size > LITERAL_MAX_BYTES)


def sized_cap(share_bytes: int, seconds: float) -> str:
    """A cap, as tahoe.cfg text in kbps (a multiple of 10), that moves ``share_bytes`` in
    about ``seconds``."""
    if not seconds > 0:
        raise ValueError(f"the run time must be positive, got {seconds!r} seconds")
    kbps = max(10, math.ceil(share_bytes * 8 / 1000 / seconds / 10) * 10)
    return f"{kbps}kbps"


def governed_cfg(source: Path, dsl_up: str) -> str:
    """The governor's sections of the demo node's tahoe.cfg."""
    return (
        "[backups]\n"
        f"{JOB}.source = {source}\n"
        f"{JOB}.target = {ALIAS}:{JOB}\n"
        f"{JOB}.frequency = 1week\n"
        "\n"
        "[bandwidth]\n"
        f"peer.{DSL_NICKNAME}.up = {dsl_up}\n"
    )


def write_alias(nodedir: Path, alias: str, dircap: str) -> None:
    """Add ``alias`` for ``dircap`` to ``NODEDIR/private/aliases`` (as ``tahoe add-alias``)."""
    aliases = nodedir / "private" / "aliases"
    with open(aliases, "a", encoding="utf-8") as f:
        f.write(f"{alias}: {dircap}\n")


# -- the runs (inside the reactor) ------------------------------------------------------


async def watch_run(
    reactor: Any,
    governor: Any,
    label: str,
    completed_before: float | None,
    view: LiveView,
    refresh_seconds: float,
    timeout: float,
) -> list[GovernorStatus]:
    """Show the job's run live until it completes; every snapshot taken, in time order.

    :class:`DemoFailed` when the job fails or takes longer than ``timeout`` seconds.
    """
    deadline = reactor.seconds() + timeout
    snapshots: list[GovernorStatus] = []
    while True:
        status = governor.controls.status()
        if not snapshots or status.at > snapshots[-1].at:
            snapshots.append(status)
        job = status.job(JOB)
        view.show(render_live(status, JOB, label), reactor.seconds())
        if run_completed(job, completed_before) and len(snapshots) >= 2:
            view.finish(render_live(status, JOB, label))
            return snapshots
        if job.state == "failed":
            view.finish()
            raise DemoFailed(f"the {label} run failed: {job.last_failure or 'no reason given'}")
        if reactor.seconds() > deadline:
            view.finish()
            raise DemoFailed(f"the {label} run did not complete within {timeout:.0f} s")
        await task.deferLater(reactor, refresh_seconds, lambda: None)


def hold_job(nodedir: Path, at: float) -> None:
    """Pause the demo's job in the node's state database before the node starts.

    A job that never ran is due at once; started before the node has met its
    storage servers, its first grid operation would fail. Paused, it waits
    until :func:`backup_runs` resumes it, as ``tahoe-governor resume`` would.
    """
    from tahoe_governor.policy.state_db import StateDatabase, state_db_path

    with StateDatabase(state_db_path(str(nodedir))) as database:
        database.set_paused(JOB, True, at)


async def wait_for_servers(
    reactor: Any,
    governor: Any,
    nicknames: Sequence[str],
    refresh_seconds: float,
    timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Return once the governor's status shows a connection to every server in ``nicknames``."""
    deadline = reactor.seconds() + timeout
    wanted = set(nicknames)
    while True:
        peers = governor.controls.status().peers
        connected = {p.nickname for p in peers if p.connected} & wanted
        if connected == wanted:
            return
        if reactor.seconds() > deadline:
            missing = ", ".join(sorted(wanted - connected))
            raise DemoFailed(
                f"the governed node did not connect to {missing} within {timeout:.0f} s"
            )
        await task.deferLater(reactor, refresh_seconds, lambda: None)


async def backup_runs(
    reactor: Any,
    governor: Any,
    tree: SampleTree,
    options: DemoOptions,
    view: LiveView,
    out: IO[str],
    record: DemoRecord,
) -> None:
    """The full run, then the incremental one after modifying ``options.modify`` files;
    fills ``record``.

    The job starts paused (see :func:`hold_job`): it is resumed once the node is
    connected to every storage server, and being due (it never ran) it starts then.
    """
    timeout = options.run_seconds * 4 + RUN_SLACK
    await wait_for_servers(reactor, governor, SERVER_NICKNAMES, options.refresh_seconds)
    print(
        f"Connected to {', '.join(SERVER_NICKNAMES)}; resuming job {JOB!r} "
        f"(governor.controls.resume({JOB!r})): it never ran, so it starts now.\n",
        file=out,
        flush=True,
    )
    governor.controls.resume(JOB)
    snapshots = await watch_run(
        reactor, governor, "full", None, view, options.refresh_seconds, timeout
    )
    record.runs.append(RunReport("full", job_run(snapshots[-1].job(JOB)), peer_usage(snapshots)))
    completed = snapshots[-1].job(JOB).last_success

    tree, record.modified = modify_files(tree, options.modify, options.seed)
    record.tree = tree
    print(
        f"\nModified {len(record.modified)} files; running the job again now "
        f"(governor.controls.run_now({JOB!r})): only they should be uploaded.\n",
        file=out,
    )
    governor.controls.run_now(JOB)
    snapshots = await watch_run(
        reactor, governor, "incremental", completed, view, options.refresh_seconds, timeout
    )
    record.runs.append(
        RunReport("incremental", job_run(snapshots[-1].job(JOB)), peer_usage(snapshots))
    )


def final_checks(record: DemoRecord) -> tuple[Check, ...]:
    """The checks for what ``record`` holds (see :func:`demo_checks`)."""
    regular = len(record.tree.files) if record.tree is not None else 0
    return demo_checks(record.runs, ("full", "incremental"), regular, len(record.modified))


def exit_status(record: DemoRecord, checks: tuple[Check, ...]) -> int:
    """0 when nothing failed and every check passed; 130 when interrupted first; else 1."""
    if record.failure is None and checks and all(c.ok for c in checks):
        return 0
    return 130 if record.interrupted and record.failure == "interrupted" else 1


# -- the whole demo ---------------------------------------------------------------------


def run_demo(
    options: DemoOptions,
    out: IO[str],
    reactor: Any,
    start_governor: StartGovernor | None = None,
) -> int:
    """Run the demo with ``reactor`` (not yet running); the exit status.

    ``start_governor`` defaults to ``tahoe_governor.app.start_governor``.
    """
    if start_governor is None:
        from tahoe_governor.app import start_governor as default_start_governor

        start_governor = default_start_governor
    starter: StartGovernor = start_governor
    record = DemoRecord()
    with _interruptions_raise(), ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="tahoe-governor-demo-"))
        cleanup.callback(_remove_workdir, workdir, out)
        print(f"Working in {workdir} (removed at exit).", file=out, flush=True)
        try:
            grid = LocalGrid(workdir / "grid", SERVER_NICKNAMES)
            cleanup.callback(_stop_grid, grid, out, record)
            nodedir = _prepare(workdir, grid, options, out, record)
            _run_reactor(reactor, starter, nodedir, options, out, record)
        except KeyboardInterrupt:
            record.interrupted = True
            record.fail("interrupted")
        except (GridError, DemoFailed, OSError, ValueError) as e:
            record.fail(str(e) or type(e).__name__)
        except Exception as e:  # still clean up, and say what it was
            record.fail(f"unexpected error: {e!r}")
        finally:
            checks = final_checks(record)
            _report(record, checks, out)
    status = exit_status(record, checks)
    print(
        "Demo passed." if status == 0 else f"Demo failed: {record.failure or 'a check failed'}.",
        file=out,
        flush=True,
    )
    return status


def _prepare(
    workdir: Path, grid: LocalGrid, options: DemoOptions, out: IO[str], record: DemoRecord
) -> Path:
    """The grid, the sample tree, the target directory and the governed node's directory."""
    print(
        "Starting a local grid on 127.0.0.1: an introducer and storage servers "
        + ", ".join(SERVER_NICKNAMES)
        + " ...",
        file=out,
        flush=True,
    )
    grid.start()
    tree = generate_sample_tree(
        workdir / "sample", seed=options.seed, files=options.files, total_bytes=options.total_bytes
    )
    record.tree = tree
    share = share_bytes_per_server(tree, SHARES[0])
    dsl_up = options.dsl_up or sized_cap(share, options.run_seconds)
    print(
        f"Sample tree: {len(tree.files)} files, {format_bytes(tree.total_bytes)} "
        f"(seed {options.seed}); each server receives about {format_bytes(share)}.",
        file=out,
    )
    nodedir = grid.make_client_dir(workdir / "governed", nickname="governed-demo", shares=SHARES)
    write_alias(nodedir, ALIAS, grid.create_directory())
    record.log = _begin_node_log(nodedir)
    with open(nodedir / "tahoe.cfg", "a", encoding="utf-8") as f:
        f.write("\n" + governed_cfg(tree.root, dsl_up))
    hold_job(nodedir, time.time())
    print(
        f"Governed node: {nodedir}\n"
        f"  [backups]   {JOB}: {tree.root} -> {ALIAS}:{JOB}\n"
        f"  [bandwidth] peer.{DSL_NICKNAME}.up = {dsl_up}\n"
        f"Query it while it runs:  tahoe-governor status {nodedir}\n",
        file=out,
        flush=True,
    )
    return nodedir


def _run_reactor(
    reactor: Any,
    start_governor: StartGovernor,
    nodedir: Path,
    options: DemoOptions,
    out: IO[str],
    record: DemoRecord,
) -> None:
    """Start the governor, run the backups (and with ``keep``, wait for Ctrl-C); stop it."""
    governor: Any = None
    stopped: defer.Deferred[Any] | None = None

    def stop_governor() -> defer.Deferred[Any] | None:
        nonlocal stopped
        if governor is None:
            return None
        if stopped is None:
            print("Stopping the governed node ...", file=out, flush=True)
            stopped = defer.ensureDeferred(_as_awaitable(governor.stop()))
            stopped.addErrback(
                lambda f: record.fail(f"the governed node did not stop cleanly: {f.value!r}")
            )
        return stopped

    async def start() -> Any:
        starting = defer.ensureDeferred(_as_awaitable(start_governor(reactor, str(nodedir))))
        starting.addTimeout(START_TIMEOUT, reactor)
        try:
            return await starting
        except defer.TimeoutError:
            raise DemoFailed(
                f"the governed node did not start within {START_TIMEOUT:.0f} s"
            ) from None
        except Exception as e:
            raise DemoFailed(f"the governed node could not start: {e!r}") from e

    async def main() -> None:
        nonlocal governor
        try:
            governor = await start()
            print(
                "Governor running:\n"
                f"  public page   {governor.web_url}governor\n"
                f"  private page  {governor.private_url}\n"
                f"  metrics       {governor.web_url}metrics\n",
                file=out,
            )
            assert record.tree is not None
            view = LiveView.for_stream(out)
            await backup_runs(reactor, governor, record.tree, options, view, out, record)
            if options.keep:
                _print_keep(governor, nodedir, record, out)
                await defer.Deferred()  # until Ctrl-C stops the reactor
        except DemoFailed as e:
            record.fail(str(e))
        except Exception as e:
            record.fail(f"unexpected error: {e!r}")
        finally:
            stopping = stop_governor()
            if stopping is not None:
                await stopping
            try:
                reactor.stop()
            except ReactorNotRunning:
                pass

    reactor.addSystemEventTrigger("before", "shutdown", stop_governor)
    reactor.callWhenRunning(lambda: defer.ensureDeferred(main()))
    reactor.run()
    if record.failure is None and len(record.runs) < 2:
        # The reactor stopped before main() ended: a signal (Ctrl-C, SIGTERM).
        record.interrupted = True
        record.fail("interrupted")


def _print_keep(governor: Any, nodedir: Path, record: DemoRecord, out: IO[str]) -> None:
    for line in render_summary(record.runs, final_checks(record)):
        print(line, file=out)
    print(
        "\nThe grid and the governed node keep running (--keep). Explore:\n"
        f"  public page   {governor.web_url}governor\n"
        f"  private page  {governor.private_url}\n"
        f"  metrics       {governor.web_url}metrics\n"
        f"  command       tahoe-governor status {nodedir}\n"
        "Press Ctrl-C to stop everything and remove it.",
        file=out,
        flush=True,
    )


def _report(record: DemoRecord, checks: tuple[Check, ...], out: IO[str]) -> None:
    print("", file=out)
    for line in render_summary(record.runs, checks):
        print(line, file=out)
    if record.failure is not None:
        print(f"  [FAIL] {record.failure}", file=out)
        if not record.interrupted and record.log is not None:
            print(f"\nLast lines of the governed node's log ({record.log}):", file=out)
            for line in _log_tail(record.log):
                print("  " + line, file=out)
    print("", file=out, flush=True)


def _begin_node_log(nodedir: Path) -> Path:
    """Send this process's Twisted log (the in-process node's) to a file in ``nodedir``."""
    from tahoe_governor.node.logs import begin_process_logging

    path = nodedir / "logs" / "governor.log"
    path.parent.mkdir(exist_ok=True)
    begin_process_logging(open(path, "a", encoding="utf-8"))  # open until the process ends
    return path


def _log_tail(path: Path | None, lines: int = 30) -> list[str]:
    if path is None or not path.exists():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]


def _stop_grid(grid: LocalGrid, out: IO[str], record: DemoRecord) -> None:
    print("Stopping the local grid ...", file=out, flush=True)
    try:
        grid.close()
    except GridError as e:
        record.fail(str(e))
        print(f"  {e}", file=out)


def _remove_workdir(workdir: Path, out: IO[str]) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"Removed {workdir}.", file=out, flush=True)


async def _as_awaitable(value: Any) -> Any:
    """``await`` a Deferred, a coroutine or a plain value alike."""
    if isinstance(value, defer.Deferred) or hasattr(value, "__await__"):
        return await value
    return value


@contextmanager
def _interruptions_raise() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, as SIGINT does, while the reactor is not running.

    SIGINT keeps Python's own handler: the reactor installs its handler only
    over that one (it leaves any other in place, e.g. a debugger's).
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
