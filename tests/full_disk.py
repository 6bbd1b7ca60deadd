"""A real file system a test can fill up and free again: a small tmpfs in its temporary directory.

Mounting needs root (CAP_SYS_ADMIN); where that is not allowed the test is
skipped, naming why, and the injected-error tests still cover the code.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILESYSTEM_BYTES = 1024 * 1024
"""Room for the databases of a test (a few pages each, their WAL and shared memory)."""


class SmallFileSystem:
    """A mounted tmpfs at :attr:`path`: :meth:`fill` takes every free block,
    :meth:`make_room` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        """Write a file until the file system has no block left (ENOSPC)."""
        block = b"\0" * 4096
        with open(self._filler, "ab", buffering=0) as f:
            while True:
                try:
                    f.write(block)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
        stats = os.statvfs(self.path)
        assert stats.f_bavail == 0, f"the file system still has {stats.f_bavail} free blocks"

    def make_room(self) -> None:
        """Remove what :meth:`fill` wrote: the disk has room again."""
        self._filler.unlink()


@contextmanager
def small_filesystem(path: Path, size: int = FILESYSTEM_BYTES,
                     inodes: int | None = None) -> Iterator[SmallFileSystem]:
    """Mount a tmpfs of ``size`` bytes (and at most ``inodes`` files and directories, when
    given) at ``path`` (created) for the block; skip if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mounted by root; this test runs as "
                    f"uid {os.geteuid()} (the injected-error tests cover the same code)")
    options = f"size={size},mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip("a real full disk needs a tmpfs, and mounting one is not permitted here: "
                    f"{mounted.stderr.strip()} (the injected-error tests cover the same code)")
    try:
        yield SmallFileSystem(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)
