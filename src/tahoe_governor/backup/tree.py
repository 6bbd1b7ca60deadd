"""The local side of a backup: what each entry is, its metadata, and a cheap size estimate.

The rules are ``tahoe backup``'s (``allmydata/scripts/tahoe_backup.py``):

- exclude patterns are shell globs matched against an entry's *name* (not its
  path), files and directories alike, as ``tahoe backup --exclude``;
- a symlink is never followed (reason ``symlink``); a directory is descended
  into; a regular file is backed up; anything else — FIFO, socket, device — is
  skipped (reason ``special``); an entry that cannot be listed or read is
  skipped (reason ``unreadable``);
- a name that is not valid text in the filesystem encoding is skipped (reason
  ``undecodable``): Tahoe stores child names as UTF-8, and ``tahoe backup``
  would stop with an error on such a name rather than store a mangled one;
- metadata stored with each child is ``get_local_metadata``'s: ``ctime`` and
  ``mtime`` and the ``st_*`` fields of ``os.stat``.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import re
import stat
import threading
from collections.abc import Iterable

import attrs

_METADATA_FIELDS = ("st_mode", "st_ino", "st_dev", "st_uid", "st_gid",
                    "st_rsize", "st_creator", "st_type")


class EntryKind(enum.Enum):
    """What a directory entry is, for the backup."""

    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    SPECIAL = "special"
    UNREADABLE = "unreadable"
    UNDECODABLE = "undecodable"


class ExcludePatterns:
    """Glob patterns for names to leave out, with ``tahoe backup --exclude`` semantics.

    Each pattern is stripped of surrounding whitespace; empty ones are
    ignored. A name is excluded when any pattern matches it whole
    (``fnmatch.translate``, case-sensitive).
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        if isinstance(patterns, str):
            raise TypeError("exclude patterns must be a sequence of strings, not one string")
        cleaned = []
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"exclude pattern must be a string, got {pattern!r}")
            pattern = pattern.strip()
            if pattern:
                cleaned.append(pattern)
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(cleaned))
        self._regexps = [re.compile(fnmatch.translate(p)) for p in self.patterns]

    def excludes(self, name: str) -> bool:
        """True if ``name`` matches a pattern."""
        return any(regexp.match(name) for regexp in self._regexps)

    def __repr__(self) -> str:
        return f"ExcludePatterns({list(self.patterns)!r})"


def local_metadata(st: os.stat_result) -> dict[str, float | int]:
    """The metadata ``tahoe backup`` stores for a child, from its ``os.stat`` result."""
    metadata: dict[str, float | int] = {"ctime": st.st_ctime, "mtime": st.st_mtime}
    for field in _METADATA_FIELDS:
        if hasattr(st, field):
            metadata[field] = getattr(st, field)
    return metadata


def is_decodable(name: str) -> bool:
    """False if ``name`` holds bytes the filesystem encoding could not decode."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def classify(entry: os.DirEntry[str]) -> EntryKind:
    """What ``entry`` is, by ``tahoe backup``'s rules (symlinks first)."""
    try:
        if entry.is_symlink():
            return EntryKind.SYMLINK
        if entry.is_dir(follow_symlinks=False):
            return EntryKind.DIRECTORY
        if entry.is_file(follow_symlinks=False):
            return EntryKind.FILE
        return EntryKind.SPECIAL
    except OSError:
        return EntryKind.UNREADABLE


def list_directory(path: str) -> list[os.DirEntry[str]]:
    """The entries of ``path``, sorted by name. Raises OSError if it cannot be listed."""
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


@attrs.frozen
class TreeEstimate:
    """How much a tree holds: regular files and their bytes (excluded names left out)."""

    files: int
    bytes: int


def estimate_tree(root: str, exclude: ExcludePatterns,
                  stop: threading.Event | None = None) -> TreeEstimate:
    """Count the files and bytes a backup of ``root`` will meet (blocking; run it in a thread).

    A cheap walk: one ``scandir`` per directory and one ``lstat`` per file,
    no reads and no database. Entries it cannot see are left out. Setting
    ``stop`` ends it early with what was counted so far.
    """
    files = 0
    total = 0
    pending = [root]
    while pending:
        if stop is not None and stop.is_set():
            break
        path = pending.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    name = entry.name
                    if exclude.excludes(name) or not is_decodable(name):
                        continue
                    kind = classify(entry)
                    if kind is EntryKind.DIRECTORY:
                        pending.append(entry.path)
                    elif kind is EntryKind.FILE:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat.S_ISREG(st.st_mode):
                            files += 1
                            total += st.st_size
        except OSError:
            continue
    return TreeEstimate(files=files, bytes=total)
