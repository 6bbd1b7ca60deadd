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
import errno
import fnmatch
import os
import re
import stat
import threading
from collections.abc import Iterable
from typing import Any

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


# -- directories opened relative to their parent --------------------------------
#
# Every directory below the source is opened by name relative to its parent's
# descriptor, without following a link, and must be the directory its listing
# saw (same st_dev and st_ino): a directory swapped for a link or for another
# directory between listing and descent is never entered. No path string is
# ever longer than one name, so a tree deeper than PATH_MAX walks as well.

DIRECTORY_FLAGS = (os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
                   | getattr(os, "O_NOFOLLOW", 0))


class DirectoryReplaced(OSError):
    """A directory is no longer the one its listing saw (replaced between listing and descent)."""


def identity(st: os.stat_result) -> tuple[int, int]:
    """What makes a file the same file: its device and inode."""
    return (st.st_dev, st.st_ino)


def open_root(path: str) -> tuple[int, os.stat_result]:
    """Open the source directory itself (a link to it is followed, as ``tahoe backup`` does).

    Raises OSError (NotADirectoryError if it is not a directory).
    """
    fd = os.open(path, DIRECTORY_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
    return fd, os.fstat(fd)


def open_subdirectory(parent_fd: int, name: str,
                      listed: tuple[int, int] | None) -> tuple[int, os.stat_result]:
    """Open ``name`` in the directory ``parent_fd`` without following a link.

    ``listed`` is the identity the listing saw (None if it saw none); a
    different directory there now is a :class:`DirectoryReplaced`.
    """
    fd = os.open(name, DIRECTORY_FLAGS, dir_fd=parent_fd)
    try:
        st = os.fstat(fd)
        if listed is None or identity(st) != listed:
            raise DirectoryReplaced(errno.ESTALE, "replaced between listing and descent", name)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def reopen_parent(child_fd: int, expected: tuple[int, int]) -> int:
    """Open the parent of ``child_fd`` again (by ``..``): it must be ``expected``.

    A directory moved elsewhere during the walk has another parent now: a
    :class:`DirectoryReplaced`.
    """
    fd = os.open("..", DIRECTORY_FLAGS, dir_fd=child_fd)
    try:
        if identity(os.fstat(fd)) != expected:
            raise DirectoryReplaced(errno.ESTALE, "moved during the walk", "..")
    except BaseException:
        os.close(fd)
        raise
    return fd


def list_directory(fd: int) -> list[os.DirEntry[str]]:
    """The entries of the open directory ``fd``, sorted by name (blocking; run it in a thread).

    Each entry's ``stat(follow_symlinks=False)`` is taken now, relative to
    ``fd``, and cached in the entry (an entry it fails for has none cached).
    Raises OSError if the directory cannot be listed.
    """
    with os.scandir(fd) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        try:
            entry.stat(follow_symlinks=False)
        except OSError:
            pass
    return entries


def listed_stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The entry's ``lstat`` as its listing took it (see :func:`list_directory`), or None."""
    try:
        return entry.stat(follow_symlinks=False)
    except (OSError, ValueError):
        return None


class DirectoryHandle:
    """An open directory of the walk, shared by whoever still needs it, closed when none does.

    The walk holds its current directory; each file task holds its file's
    directory until it ends (to open the file, and to open it again after a
    change). A handle closed while the walk was below it is opened again
    through ``..`` (:meth:`reopen`), so the walk holds few descriptors at
    any depth.
    """

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd: int | None = fd
        self.stat = st
        """The directory's ``fstat`` when it was opened."""
        self.identity = identity(st)
        self._holders = 1

    def hold(self) -> None:
        assert self.fd is not None, "hold an open directory"
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0 and self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def reopen(self, fd: int) -> None:
        """The directory was opened again (``fd``, identity already checked); held once."""
        assert self.fd is None and self._holders == 0
        self.fd = fd
        self._holders = 1


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
    ``stop`` ends it early with what was counted so far. Directories are
    opened as the walk opens them (:func:`open_subdirectory`), one at a time,
    going back up through ``..``; the estimate ends early if that fails.
    """
    files = 0
    total = 0
    try:
        fd, st = open_root(root)
    except OSError:
        return TreeEstimate(files=0, bytes=0)
    # one frame per level: (identity, subdirectories still to visit)
    frames: list[tuple[tuple[int, int], list[tuple[str, tuple[int, int] | None]]]] = []
    subdirectories: list[tuple[str, tuple[int, int] | None]] = []
    try:
        while True:
            if stop is not None and stop.is_set():
                break
            subdirectories = []
            try:
                entries = list_directory(fd)
            except OSError:
                entries = []
            for entry in entries:
                name = entry.name
                if exclude.excludes(name) or not is_decodable(name):
                    continue
                kind = classify(entry)
                entry_stat = listed_stat(entry)
                if kind is EntryKind.DIRECTORY:
                    subdirectories.append(
                        (name, identity(entry_stat) if entry_stat is not None else None))
                elif kind is EntryKind.FILE and entry_stat is not None:
                    if stat.S_ISREG(entry_stat.st_mode):
                        files += 1
                        total += entry_stat.st_size
            subdirectories.reverse()  # popped from the end: in name order
            frames.append((identity(st), subdirectories))
            fd, st = _next_directory(fd, frames)
            if fd < 0:
                break
    finally:
        if fd >= 0:
            os.close(fd)
    return TreeEstimate(files=files, bytes=total)


def _next_directory(fd: int, frames: list[Any]) -> tuple[int, Any]:
    """From the directory ``fd`` (the last frame's), open the next one to count, depth first.

    Returns ``(-1, None)`` when there is none left (or the way back up is lost).
    """
    while frames:
        _, pending = frames[-1]
        while pending:
            name, listed = pending.pop()
            try:
                child, st = open_subdirectory(fd, name, listed)
            except OSError:
                continue
            os.close(fd)
            return child, st
        frames.pop()
        if not frames:
            break
        try:
            parent = reopen_parent(fd, frames[-1][0])
        except OSError:
            break
        os.close(fd)
        fd = parent
    os.close(fd)
    return -1, None
