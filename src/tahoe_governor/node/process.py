"""Running a governed node as the process's main work, in place of ``tahoe run``.

Keeps Tahoe's pidfile discipline: the same ``NODEDIR/running.process`` file,
checked and written by Tahoe's own ``allmydata.util.pid`` functions under the
same lock, so ``tahoe run`` and ``tahoe-governor run`` exclude each other on
one node directory, and a stale file (its process gone) is replaced. SIGINT
and SIGTERM stop the reactor the usual Twisted way; a "before shutdown"
trigger waits for the node's stop (stop hooks first, then Tahoe's services),
and an "after shutdown" trigger removes the pidfile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from allmydata.scripts.tahoe_run import get_pidfile
from allmydata.util.pid import (
    InvalidPidFile,
    ProcessInTheWay,
    check_pid_process,
    cleanup_pidfile,
)
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from tahoe_governor.node.client import GovernedClient, create_governed_client
from tahoe_governor.node.config import (
    CONFIGURATION_ERRORS,
    describe_configuration_error,
    read_governed_node,
)
from tahoe_governor.node.logs import begin_process_logging, node_log, node_log_failure
from tahoe_governor.node.tubs import TubShaper
from tahoe_governor.policy.local_zone import local_zone

#: Called with the started node: where the manager, web pages and metrics attach.
OnStarted = Callable[[GovernedClient], Any]

CONFIGURATION_ERROR_PREFIX = "tahoe-governor run: configuration error: "


def pidfile_path(basedir: str) -> FilePath:
    """The node's pidfile: the very file ``tahoe run`` uses."""
    return FilePath(get_pidfile(basedir))


def run_governed_node(
    basedir: str,
    make_shaper: Callable[[Any], TubShaper],
    reactor: Any,
    out: IO[str],
    err: IO[str],
    on_started: OnStarted | None = None,
) -> int:
    """Run the governed node in ``basedir`` until a signal stops it; return the exit status.

    ``make_shaper(reactor)`` makes the shaper installed on every storage Tub;
    ``on_started(client)`` (may return a Deferred) runs once the node has
    started. Status 0 after a clean stop, 1 when the node could not start.
    """
    try:
        # Everything check judges, judged the same way before anything starts.
        config, _ = read_governed_node(basedir, local_zone())
    except CONFIGURATION_ERRORS as e:
        print(f"{CONFIGURATION_ERROR_PREFIX}{describe_configuration_error(e)}", file=err)
        return 1
    except Exception as e:
        print(f"tahoe-governor run: cannot read the node's configuration: {e!r}", file=err)
        return 1
    pidfile = pidfile_path(config.basedir)
    try:
        check_pid_process(pidfile)
    except (ProcessInTheWay, InvalidPidFile) as e:
        print(f"tahoe-governor run: ERROR: {e} (pidfile {pidfile.path})", file=err)
        return 1
    reactor.addSystemEventTrigger("after", "shutdown", cleanup_pidfile, pidfile)

    begin_process_logging(out)
    status = {"code": 0}

    async def start() -> None:
        client = await create_governed_client(config, make_shaper(reactor), reactor)
        reactor.addSystemEventTrigger("before", "shutdown", client.stopService)
        client.startService()
        node_log(f"governed node running in {config.basedir} (pid file {pidfile.path})")
        if on_started is not None:
            await defer.maybeDeferred(on_started, client)

    def failed(reason: Failure) -> None:
        status["code"] = 1
        if reason.check(*CONFIGURATION_ERRORS):
            print(f"{CONFIGURATION_ERROR_PREFIX}{describe_configuration_error(reason.value)}",
                  file=err)
        else:
            node_log_failure("the governed node could not start", reason)
            print(f"tahoe-governor run: the node could not start: {reason.value!r}", file=err)
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()).addErrback(failed))
    reactor.run()
    return status["code"]
