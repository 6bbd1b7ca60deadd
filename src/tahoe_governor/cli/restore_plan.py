"""What a restore will do with each entry of an archive, decided before a byte is fetched.

Each file of the archive is, in DEST, one of: missing (download it); already
restored and verified by the manifest's size and SHA-256 (skip it); restored
before but changed since, or never renamed into place (download it again);
some other existing file (a conflict: kept, and the restore refuses to start,
unless ``--overwrite``). A directory in the place of a file, or anything but
a directory in the place of a directory, is a conflict even with
``--overwrite``: a restore replaces files, never directories.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import attrs

from tahoe_governor.cli.restore_archive import ArchiveEntry
from tahoe_governor.cli.restore_manifest import RestoreManifest, cap_digest


@attrs.frozen
class RestorePlan:
    """The decisions of :func:`plan_restore`, in archive order."""

    directories: tuple[ArchiveEntry, ...]
    downloads: tuple[ArchiveEntry, ...]
    """Files to fetch (the ``changed`` ones included)."""
    verified: tuple[ArchiveEntry, ...]
    """Files already restored: size and content checked against the manifest."""
    changed: tuple[str, ...]
    """Files a restore wrote that no longer match what it wrote: fetched again."""
    conflicts: tuple[str, ...]
    """Existing paths the restore may not replace (``--overwrite`` lifts the file ones)."""

    @property
    def download_bytes(self) -> int:
        return sum(entry.size for entry in self.downloads)


def local_path(dest: Path, entry: ArchiveEntry) -> Path:
    return dest.joinpath(*entry.path)


def plan_restore(entries: Iterable[ArchiveEntry], dest: Path, manifest: RestoreManifest,
                 overwrite: bool) -> RestorePlan:
    """Decide for every entry; reads DEST (and hashes files the manifest says it wrote)."""
    directories: list[ArchiveEntry] = []
    downloads: list[ArchiveEntry] = []
    verified: list[ArchiveEntry] = []
    changed: list[str] = []
    conflicts: list[str] = []
    for entry in entries:
        path = local_path(dest, entry)
        try:
            mode: int | None = os.lstat(path).st_mode
        except FileNotFoundError:
            mode = None
        except NotADirectoryError:
            conflicts.append(f"{entry.label} (a parent in DEST is not a directory)")
            continue
        if entry.kind == "directory":
            if mode is not None and not stat.S_ISDIR(mode):
                conflicts.append(f"{entry.label} (the archive has a directory there)")
            directories.append(entry)
            continue
        if mode is None:
            downloads.append(entry)
        elif stat.S_ISDIR(mode):
            conflicts.append(f"{entry.label} (a directory, where the archive has a file)")
        elif stat.S_ISREG(mode) and manifest.verifies(entry.label, entry.private_cap, path):
            verified.append(entry)
        elif stat.S_ISREG(mode) and _restored_before(manifest, entry):
            changed.append(entry.label)
            downloads.append(entry)
        elif overwrite:
            downloads.append(entry)
        else:
            conflicts.append(entry.label)
    return RestorePlan(tuple(directories), tuple(downloads), tuple(verified), tuple(changed),
                       tuple(conflicts))


def _restored_before(manifest: RestoreManifest, entry: ArchiveEntry) -> bool:
    record = manifest.record_for(entry.label)
    return record is not None and record.cap_digest == cap_digest(entry.private_cap)
