"""Tahoe's NOISY log events are not made in the governed node: they cost it CPU on every file.

Tahoe's downloader and uploader log several events per file, per share and
per request at level NOISY (``allmydata.util.log.msg``). Each one converts
its arguments (``bytes_to_unicode``) and builds a Foolscap event for the
in-memory buffers that ``flogtool tail`` and incident reports read, whether
or not anyone reads them. Restoring many small files, a py-spy profile of the
node's reactor found about 10 % of its time there, and the node's CPU per
file fell by 10-20 % without them (see docs/benchmarks.md, "Restore").

:func:`install` sets Foolscap's generation threshold to OPERATIONAL and makes
Tahoe's ``log.msg`` (and the ``log`` method of its log mixins) return at once
below it, before converting anything; as Foolscap's own ``msg`` does below
its threshold, it then returns no event number, which the callers only pass
on as a ``parent``.
Everything from OPERATIONAL up (the governor's messages, Tahoe's unusual and
worse events, the incidents they trigger) is logged as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allmydata.util import log as tahoe_log
from foolscap.logging import log as foolscap_log

THRESHOLD = tahoe_log.OPERATIONAL
"""The lowest level still made; Foolscap's default level for an event without one."""


def _from_threshold(original: Callable[..., Any]) -> Callable[..., Any]:
    def log(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("level", THRESHOLD) < THRESHOLD:
            return None  # as Foolscap's msg below its threshold: no event, no number
        return original(*args, **kwargs)

    log.__wrapped__ = original  # type: ignore[attr-defined]
    return log


def install() -> None:
    """Stop making Tahoe's events below OPERATIONAL in this process (idempotent)."""
    foolscap_log.theLogger.set_generation_threshold(THRESHOLD)
    if getattr(tahoe_log.msg, "__wrapped__", None) is None:
        tahoe_log.msg = _from_threshold(tahoe_log.msg)
    for mixin in (tahoe_log.LogMixin, tahoe_log.PrefixingLogMixin):
        if getattr(mixin.__dict__["log"], "__wrapped__", None) is None:
            mixin.log = _from_threshold(mixin.__dict__["log"])
