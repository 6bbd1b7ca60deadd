"""The governed node's log: each message goes to Twisted's log and to Tahoe's Foolscap log.

Twisted's log is what ``tahoe run`` prints (the process output); Tahoe's own
log (``allmydata.util.log``, read with ``flogtool tail NODEDIR/private/logport.furl``)
is where Tahoe's messages go. A governed node writes its own events to both so
either place tells the whole story.
"""

from __future__ import annotations

from typing import IO, cast

from allmydata.util import log as tahoe_log
from twisted.logger import ILogObserver, Logger, globalLogBeginner, textFileLogObserver

_log = Logger(namespace="tahoe_governor.node")


def node_log(message: str) -> None:
    """Record ``message`` (plain text, no capability, no secret) in both logs."""
    _log.info("{message}", message=message)
    tahoe_log.msg(message, facility="tahoe_governor.node")


def node_log_failure(message: str, failure: object) -> None:
    """Record an error with its traceback in both logs."""
    _log.failure("{message}", failure=failure, message=message)  # type: ignore[arg-type]
    tahoe_log.msg(f"{message}: {failure}", facility="tahoe_governor.node", level=tahoe_log.UNUSUAL)


def begin_process_logging(stream: IO[str]) -> None:
    """Send Twisted's log to ``stream``, as ``tahoe run`` does with its output."""
    observer = cast(ILogObserver, textFileLogObserver(stream))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
