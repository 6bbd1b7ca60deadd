"""Re-reading tahoe.cfg into a running node: judged as ``check`` judges it, applied only if valid.

:func:`read_for_reload` reads the node directory with the same judgement as
``run`` and ``check`` (:func:`~tahoe_governor.node.config.read_governed_node`):
a file ``check`` refuses is refused with the same words, and nothing changes.
Only the governor's sections take effect live; a change elsewhere (Tahoe's own
``[node]``, ``[client]``, ...) is read by Tahoe only when the node starts, so
it is listed as needing a restart. :func:`describe_reload` says what changed.
"""

from __future__ import annotations

import configparser
import os
import signal
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from tahoe_governor.backup.scheduler import BackupScheduler
from tahoe_governor.node.config import (
    CONFIGURATION_ERRORS,
    GOVERNOR_SECTIONS,
    describe_configuration_error,
    read_governed_node,
)
from tahoe_governor.policy.config import Policy
from tahoe_governor.policy.service import LivePolicy
from tahoe_governor.status import ControlError

log = Logger()


@attrs.frozen
class ReloadedConfig:
    """A valid tahoe.cfg read again: the policy to run, and what only a restart applies."""

    policy: Policy
    text: str
    restart_needed: tuple[str, ...]
    """``[section] key`` of each Tahoe setting that differs from the running node's."""


def read_for_reload(nodedir: str, running: Policy, running_text: str) -> ReloadedConfig:
    """Read NODEDIR's tahoe.cfg again; :class:`ControlError` with ``check``'s words if invalid.

    The policy keeps the running node's encoding (Tahoe reads ``[client]
    shares.*`` at start only) and time zone.
    """
    try:
        config, policy = read_governed_node(nodedir, running.tz)
    except CONFIGURATION_ERRORS as e:
        raise ControlError(f"{os.path.join(nodedir, 'tahoe.cfg')}: "
                           f"{describe_configuration_error(e)}; nothing was changed") from None
    text = config.sections.text
    return ReloadedConfig(
        policy=attrs.evolve(policy, encoding=running.encoding),
        text=text,
        restart_needed=tahoe_settings_changed(running_text, text),
    )


def _settings(text: str) -> dict[tuple[str, str], str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       default_section="\x00none")
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    return {(section, key): value for section in parser.sections()
            if section not in GOVERNOR_SECTIONS for key, value in parser.items(section)}


def tahoe_settings_changed(before: str, after: str) -> tuple[str, ...]:
    """``[section] key`` of every setting outside the governor's sections that differs."""
    old, new = _settings(before), _settings(after)
    return tuple(f"[{section}] {key}" for section, key in sorted(old.keys() | new.keys())
                 if old.get((section, key)) != new.get((section, key)))


def describe_reload(before: Policy, reloaded: ReloadedConfig) -> str:
    """What a reload changed, in a few sentences for the owner."""
    after = reloaded.policy
    old = {job.name: job for job in before.scheduled_jobs}  # [maintenance] tasks too
    new = {job.name: job for job in after.scheduled_jobs}
    parts = []
    if added := [n for n in new if n not in old]:
        parts.append(f"{_jobs(added)} added")
    if removed := [n for n in old if n not in new]:
        parts.append(f"{_jobs(removed)} removed (a run in progress was stopped and "
                     "recorded as interrupted)")
    if changed := [n for n in new if n in old and new[n] != old[n]]:
        parts.append(f"{_jobs(changed)} changed (limits at once; source, target and "
                     "exclusions from the next run)")
    if attrs.evolve(after, jobs=(), maintenance=()) != attrs.evolve(before, jobs=(),
                                                                 maintenance=()):
        parts.append("[bandwidth] changed")
    said = ("Reloaded tahoe.cfg: " + "; ".join(parts) + "." if parts else
            "Reloaded tahoe.cfg: nothing changed in [backups] or [bandwidth].")
    if reloaded.restart_needed:
        said += (" These settings take effect only when the node restarts: "
                 + ", ".join(reloaded.restart_needed) + ".")
    return said


def _jobs(names: list[str]) -> str:
    return ("job " if len(names) == 1 else "jobs ") + ", ".join(names)


ConfigReader = Callable[[Policy, str], ReloadedConfig]
"""``(running policy, running tahoe.cfg text) -> ReloadedConfig``; raises ControlError."""


class ConfigReloader:
    """Reloads tahoe.cfg into the running jobs and limits (the ``reload`` control, SIGHUP).

    :param read: reads the file again (:func:`read_for_reload` on the node directory).
    :param text: the tahoe.cfg text the node runs with now.
    """

    def __init__(self, read: ConfigReader, scheduler: BackupScheduler, live: LivePolicy,
                 text: str) -> None:
        self._read = read
        self._scheduler = scheduler
        self._live = live
        self._text = text

    def reload(self) -> str:
        """Apply tahoe.cfg as it is now; what changed. Invalid: ControlError, nothing changed."""
        reloaded = self._read(self._live.configured_policy, self._text)
        said = describe_reload(self._live.configured_policy, reloaded)
        self._text = reloaded.text
        self._scheduler.set_policy(reloaded.policy)
        log.info("{said}", said=said)
        return said


def reload_on_sighup(reactor: Any, reload: Callable[[], str]) -> None:
    """Reload tahoe.cfg when the process gets SIGHUP (as daemons do); the outcome is logged."""

    def reload_logged() -> None:
        try:
            reload()  # logs what changed
        except ControlError as e:
            log.warn("SIGHUP: tahoe.cfg not reloaded: {error}", error=str(e))

    signal.signal(signal.SIGHUP, lambda signum, frame: reactor.callFromThread(reload_logged))
