"""Writing one restored file so that nothing half-written ever bears its final name.

The bytes go to a temporary file in the destination's own directory (so the
rename is atomic: same file system), named ``.tahoe-governor-partial-*``;
its SHA-256 is computed as it is written; when the size is the archive's,
the modification time is set, the manifest records the file, and the
temporary file is renamed to the final name. Any failure, a stop request
or a full disk removes the temporary file; a kill leaves it behind, and the
next restore removes it (:func:`remove_stale_partials`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tahoe_governor.cli.restore_manifest import RestoredFile, RestoreManifest, cap_digest
from tahoe_governor.cli.restore_rate import SharedRate

PARTIAL_PREFIX = ".tahoe-governor-partial-"


class DiskFullError(Exception):
    """The destination's file system has no room (or quota) left for the restore."""


class StopRequested(Exception):
    """The restore is stopping (Ctrl-C, or another file hit a full disk)."""


def set_mtime(path: Path, mtime: float | None) -> None:
    """Give ``path`` the recorded modification time (its access time too); None: leave it."""
    if mtime is not None:
        ns = round(mtime * 1e9)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)


def remove_stale_partials(folder: Path) -> int:
    """Remove the temporary files a killed restore left in ``folder``; how many."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(PARTIAL_PREFIX):
            try:
                os.unlink(folder / name)
                removed += 1
            except OSError:
                pass
    return removed


def write_restored_file(
    stream: IO[bytes], final: Path, relative: str, cap: str, size: int, mtime: float | None,
    manifest: RestoreManifest, rate: SharedRate, stop: threading.Event,
    on_bytes: Callable[[int], None], write: Callable[[int, memoryview], int] = os.write,
) -> None:
    """Copy ``stream`` (the file's content from the grid) to ``final``; see the module doc.

    ``write`` is ``os.write`` (a seam for tests). Raises :class:`DiskFullError`,
    :class:`StopRequested`, or ``OSError`` / ``ValueError`` for other failures; in every
    case no temporary file is left and ``final`` is untouched.
    """
    fd, renamed = -1, False
    partial = final.parent / f"{PARTIAL_PREFIX}{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o644)
        digest, written = hashlib.sha256(), 0
        while True:
            if stop.is_set():
                raise StopRequested()
            block = stream.read(rate.read_size)
            if not block:
                break
            view = memoryview(block)
            while view:
                view = view[write(fd, view):]
            digest.update(block)
            written += len(block)
            on_bytes(len(block))
            rate.pay(len(block), stop.wait)
        if written != size:
            raise ValueError(f"the node sent {written} bytes where the archive lists {size}")
        os.close(fd)
        fd = -1
        set_mtime(partial, mtime)
        manifest.add(RestoredFile(relative, cap_digest(cap), size, digest.hexdigest()))
        os.replace(partial, final)
        renamed = True
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(str(final.parent)) from None
        raise
    finally:
        if fd >= 0:
            os.close(fd)
        if not renamed:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
