"""An in-memory grid behind the restore's web API, and a NODEDIR whose job targets it."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import IO, Any

from allmydata import uri

from tahoe_governor.cli.restore_archive import DownloadError


def fake_dircap(seed: int) -> str:
    """A well-formed writable directory cap (what ``private/aliases`` holds)."""
    key = bytes([seed % 256]) * 16
    return uri.DirectoryURI(uri.WriteableSSKFileURI(key, b"f" * 32)).to_string().decode()


class FakeGrid:
    """Directories and files by cap, answering like Tahoe's web API; counts what is read."""

    def __init__(self) -> None:
        self._nodes: dict[str, Any] = {}
        self._numbers = itertools.count()
        self.opened: list[str] = []
        self.bytes_sent = 0
        self.broken: set[str] = set()

    def add_file(self, data: bytes) -> str:
        cap = f"URI:CHK:fake{next(self._numbers)}:{len(data)}"
        self._nodes[cap] = data
        return cap

    def add_directory(self, children: dict[str, tuple[str, dict[str, Any]]],
                      cap: str | None = None) -> str:
        """``children``: name -> (cap, metadata)."""
        cap = cap or f"URI:DIR2-CHK:fake{next(self._numbers)}"
        self._nodes[cap] = dict(children)
        return cap

    def link(self, directory: str, name: str, child: str, metadata: dict[str, Any]) -> None:
        self._nodes[directory][name] = (child, metadata)

    def _info(self, cap: str, metadata: dict[str, Any] | None = None) -> tuple[str, dict]:
        node = self._nodes[cap]
        info: dict[str, Any] = {"ro_uri": cap}
        if metadata is not None:
            info["metadata"] = metadata
        if isinstance(node, bytes):
            return "filenode", {**info, "size": len(node)}
        return "dirnode", info

    def directory(self, cap: str, path: tuple[str, ...] = ()) -> dict[str, Any] | None:
        for name in path:
            node = self._nodes.get(cap)
            if not isinstance(node, dict) or name not in node:
                return None
            cap = node[name][0]
        node = self._nodes.get(cap)
        if node is None:
            return None
        kind, info = self._info(cap)
        if kind == "dirnode":
            info["children"] = {name: list(self._info(child, md))
                                for name, (child, md) in node.items()}
        return {"kind": kind, **info}

    def open_file(self, cap: str) -> IO[bytes]:
        self.opened.append(cap)
        if cap in self.broken:
            raise DownloadError("the node answered 410: NotEnoughSharesError")
        data = self._nodes[cap]
        self.bytes_sent += len(data)
        return io.BytesIO(data)


def backup_metadata(mtime: float) -> dict[str, Any]:
    """A child's metadata as ``tahoe backup`` records it (link times differ from mtime)."""
    return {"mtime": mtime, "ctime": mtime, "tahoe": {"linkcrtime": 2e9, "linkmotime": 2e9}}


def make_backup_node(nodedir: Path, rootcap: str, job_target: str = "backup:photos") -> None:
    """A NODEDIR with job ``b1`` backing up to ``job_target``, the alias ``backup`` at
    ``rootcap``."""
    (nodedir / "private").mkdir(parents=True, exist_ok=True)
    (nodedir / "private" / "aliases").write_text(f"backup: {rootcap}\n")
    (nodedir / "tahoe.cfg").write_text(
        "[node]\nnickname = t\n[backups]\n"
        f"b1.source = {nodedir}/source\nb1.target = {job_target}\nb1.frequency = 1day\n"
        f"b2.source = {nodedir}/source\nb2.target = backup:other\nb2.frequency = 1day\n")


def add_archives(grid: FakeGrid, rootcap: str,
                 archives: dict[str, dict[str, Any]], latest: str) -> dict[str, str]:
    """Build ``photos/Archives/<name>`` for each tree and ``photos/Latest``; their caps.

    A tree maps names to bytes (a file, mtime 1_600_000_000 + its length) or to a tree."""
    caps = {name: _tree(grid, tree) for name, tree in archives.items()}
    archives_dir = grid.add_directory({name: (cap, {}) for name, cap in caps.items()})
    photos = grid.add_directory({"Archives": (archives_dir, {}), "Latest": (caps[latest], {})})
    grid.add_directory({"photos": (photos, {})}, cap=rootcap)
    return caps


def _tree(grid: FakeGrid, tree: dict[str, Any]) -> str:
    children = {}
    for name, value in tree.items():
        if isinstance(value, bytes):
            children[name] = (grid.add_file(value), backup_metadata(file_mtime(value)))
        else:
            children[name] = (_tree(grid, value), backup_metadata(1_500_000_000.5))
    return grid.add_directory(children)


def file_mtime(data: bytes) -> float:
    """The mtime :func:`add_archives` records for a file of content ``data``."""
    return 1_600_000_000.25 + len(data)
