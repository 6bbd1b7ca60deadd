"""What a restore has finished, for the next run to skip safely: a record per file restored.

A restore into DEST keeps ``NODEDIR/private/restores/<digest of DEST>.jsonl``:
one JSON line per file, appended as soon as the file's content is complete
and *before* it is renamed to its final name, holding its path under DEST,
its size, the SHA-256 of the bytes written and a digest of the file's cap
(so the manifest holds no capability). A run that finds a file of DEST with
a record for the same cap re-hashes the local file and skips it only if
size and hash match; anything else (a file edited, truncated, or never
renamed) is downloaded again. The last record of a path wins; a line cut
short by a kill is ignored. Tahoe's immutable caps are convergent, so the
same content in another archive has the same cap and is skipped too.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import attrs

MANIFEST_FOLDER = os.path.join("private", "restores")
HASH_BLOCK_BYTES = 1024 * 1024


def cap_digest(cap: str) -> str:
    """A digest that tells caps apart without revealing them."""
    return hashlib.sha256(b"tahoe-governor restore:" + cap.encode("utf-8")).hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """The SHA-256 of the local file at ``path`` (read in blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


@attrs.frozen
class RestoredFile:
    """One manifest record: a file restored at ``path`` (relative to DEST, '/'-separated)."""

    path: str
    cap_digest: str
    size: int
    sha256: str


def manifest_path(nodedir: str, dest: Path) -> Path:
    """Where the manifest of restores into ``dest`` lives in the node directory."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(dest))).hexdigest()[:24]
    return Path(nodedir) / MANIFEST_FOLDER / f"{key}.jsonl"


class RestoreManifest:
    """The records of restores into one DEST, read once, appended to as files complete."""

    def __init__(self, path: Path, dest: Path) -> None:
        self.path = path
        self._records: dict[str, RestoredFile] = {}
        self._lock = threading.Lock()
        if path.exists():
            self._read()
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._append({"dest": os.path.abspath(dest)})

    def _read(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    restored = RestoredFile(str(record["path"]), str(record["cap"]),
                                            int(record["size"]), str(record["sha256"]))
                except (ValueError, KeyError, TypeError):
                    continue  # the header, or a line a kill cut short
                self._records[restored.path] = restored

    def _append(self, record: dict[str, object]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of one line: a kill leaves whole lines
        finally:
            os.close(fd)

    def record_for(self, path: str) -> RestoredFile | None:
        """The last record of ``path``, if any."""
        return self._records.get(path)

    def add(self, restored: RestoredFile) -> None:
        """Record a file whose content is complete (call before renaming it into place)."""
        with self._lock:
            self._append({"path": restored.path, "cap": restored.cap_digest,
                          "size": restored.size, "sha256": restored.sha256})
            self._records[restored.path] = restored

    def verifies(self, path: str, cap: str, local: Path) -> bool:
        """Whether ``local`` is exactly what a restore of ``cap`` wrote at ``path``."""
        record = self._records.get(path)
        if record is None or record.cap_digest != cap_digest(cap):
            return False
        try:
            if local.stat().st_size != record.size:
                return False
            return file_sha256(local) == record.sha256
        except OSError:
            return False
