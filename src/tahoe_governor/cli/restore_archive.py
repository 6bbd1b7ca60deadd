"""What a restore reads: a job's archives and the tree of one, through the node's web API.

The running governed node serves Tahoe's web API (``NODEDIR/node.url``), and
every download it makes goes over its shaped Foolscap connections: reading
through it is what puts a restore under the node's and the peers' ``down``
caps. :class:`NodeWebAPI` is that API, with one persistent HTTP connection
per thread (many small files cost a request each, not a connection each).

A job's target holds ``tahoe backup``'s layout (``Archives/<timestamp>`` and
``Latest``); :func:`find_archive` picks one, :func:`archive_files` lists what
it holds as :class:`ArchiveEntry` values with the modification time ``tahoe
backup`` recorded (``metadata.mtime``; the link time ``tahoe:linkmotime`` only
when it is missing). Capabilities stay in private fields and never appear in
a message.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol

import attrs

from tahoe_governor.status import private_field

ARCHIVES = "Archives"
LATEST = "Latest"
LATEST_WORD = "latest"
"""``--archive latest``: the archive ``Latest`` links to."""
TIMEOUT_SECONDS = 300.0
"""How long one request may stay silent (a peer under a low ``down`` cap is slow)."""


class RestoreError(Exception):
    """A restore cannot start or go on: the message says what and what to do."""


class DownloadError(Exception):
    """One file could not be read from the grid (the others may still be)."""


class WebAPI(Protocol):
    """The parts of Tahoe's web API a restore uses (:class:`NodeWebAPI`, or a fake)."""

    def directory(self, cap: str, path: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """``GET /uri/CAP/PATH?t=json``'s node info, or None when no such child."""

    def open_file(self, cap: str) -> IO[bytes]:
        """The content of the file ``cap`` as a stream to read to its end, then close."""


class NodeWebAPI:
    """Tahoe's web API at ``node_url``, one keep-alive connection per calling thread."""

    def __init__(self, node_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        parsed = urllib.parse.urlsplit(node_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise RestoreError(f"the node's web address {node_url!r} is not an http:// URL")
        self._host, self._port = parsed.hostname, parsed.port or 80
        self._base = parsed.path.rstrip("/")
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close this thread's connection (the others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _get(self, path: str) -> http.client.HTTPResponse:
        # A kept connection the server closed meanwhile fails at once: retry on a fresh one.
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("GET", self._base + path)
                return connection.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def directory(self, cap: str, path: tuple[str, ...] = ()) -> dict[str, Any] | None:
        response = self._get(_uri_path(cap, path) + "?t=json")
        body = response.read()
        if response.status == 404:
            return None
        if response.status != 200:
            raise RestoreError(f"the node answered {response.status} to a directory listing: "
                               f"{_reason(body)}")
        kind, info = json.loads(body)
        return {"kind": kind, **info}

    def open_file(self, cap: str) -> IO[bytes]:
        response = self._get(_uri_path(cap, ()))
        if response.status != 200:
            body = response.read()
            raise DownloadError(f"the node answered {response.status}: {_reason(body)}")
        return response


def _uri_path(cap: str, path: tuple[str, ...]) -> str:
    names = "".join("/" + urllib.parse.quote(name, safe="") for name in path)
    return "/uri/" + urllib.parse.quote(cap, safe="") + names


def _reason(body: bytes) -> str:
    """The first line of Tahoe's error page, without anything that looks like a cap."""
    text = body.decode("utf-8", "replace").strip().splitlines()
    first = next((line for line in text if line.strip()), "no reason given")
    return " ".join(word if not word.startswith("URI:") else "<cap>"
                    for word in first.split())[:300]


@attrs.frozen
class Archive:
    """One archive of a job: its name under ``Archives/`` (a timestamp) and its directory."""

    name: str
    """The timestamp, as ``tahoe backup`` names it (``2026-12-05_22:00:05Z``)."""
    private_cap: str = private_field(repr=False)
    is_latest: bool = False


@attrs.frozen
class ArchiveEntry:
    """A file or directory of an archive, at ``path`` (names below the archive's root)."""

    path: tuple[str, ...]
    kind: str
    """``file`` or ``directory``."""
    private_cap: str = private_field(repr=False)
    size: int = 0
    mtime: float | None = None
    """Seconds since the epoch as ``tahoe backup`` recorded it; None when unknown."""

    @property
    def label(self) -> str:
        return "/".join(self.path) or "."


def _child_cap(info: dict[str, Any]) -> str | None:
    cap = info.get("ro_uri") or info.get("rw_uri")
    return str(cap) if cap else None


def recorded_mtime(metadata: dict[str, Any]) -> float | None:
    """The modification time ``tahoe backup`` stored, or the link's, or None."""
    for value in (metadata.get("mtime"), (metadata.get("tahoe") or {}).get("linkmotime")):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def known_names(names: list[str], limit: int = 12) -> str:
    """``a, b, c`` (and how many more), for "expected one of" messages."""
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def find_archive(api: WebAPI, target_cap: str, target_path: tuple[str, ...], label: str,
                 wanted: str) -> Archive:
    """The archive ``wanted`` (a timestamp under ``Archives/``, or ``latest``) of the target."""
    target = api.directory(target_cap, target_path)
    if target is None:
        raise RestoreError(f"the backup target {label} does not exist on the grid: "
                           "has the job completed a run? ('tahoe-governor status')")
    children = target.get("children", {})
    archives = api.directory(target_cap, (*target_path, ARCHIVES)) if ARCHIVES in children \
        else None
    by_name = {name: _child_cap(info) for name, (kind, info)
               in (archives or {}).get("children", {}).items() if kind == "dirnode"}
    newest_first = sorted(by_name, reverse=True)
    latest_cap = _child_cap(children[LATEST][1]) if LATEST in children else None
    if wanted.lower() == LATEST_WORD:
        if latest_cap is None:
            raise RestoreError(f"the backup target {label} has no {LATEST} archive yet: "
                               "has the job completed a run?")
        name = next((n for n in newest_first if by_name[n] == latest_cap), LATEST)
        return Archive(name, latest_cap, is_latest=True)
    cap = by_name.get(wanted)
    if cap is None:
        raise RestoreError(f"no archive {wanted!r} in {label}/{ARCHIVES}: expected 'latest' or "
                           f"one of {known_names(newest_first)}")
    return Archive(wanted, cap, is_latest=cap == latest_cap)


def safe_name(name: str) -> bool:
    """Whether a child name from the grid can be a single local file name."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def archive_files(
    api: WebAPI, archive: Archive, subpath: tuple[str, ...] = (),
    on_unsafe: Callable[[str], None] = lambda label: None, parallel: int = 1,
) -> list[ArchiveEntry]:
    """Every directory (before what it holds) and file of ``archive`` under ``subpath``.

    Directories are listed level by level, ``parallel`` at once (each listing of an
    immutable directory is a download of its own). ``on_unsafe`` hears of names that
    cannot be local file names (skipped)."""
    root = api.directory(archive.private_cap, subpath) if subpath else \
        api.directory(archive.private_cap)
    if root is None:
        parent = api.directory(archive.private_cap, subpath[:-1]) or {}
        names = sorted(parent.get("children", {}))
        raise RestoreError(f"no {'/'.join(subpath)!r} in archive {archive.name}: "
                           f"{'/'.join(subpath[:-1]) or 'its top'} holds {known_names(names)}")
    if root["kind"] == "filenode":
        parent = api.directory(archive.private_cap, subpath[:-1]) or {}
        _kind, info = parent.get("children", {}).get(subpath[-1], ("filenode", root))
        return [_file_entry(subpath, info)]
    entries: list[ArchiveEntry] = []
    level: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = [(subpath, root, {})]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        while level:
            subdirectories = []
            for path, listing, metadata in level:
                entries.append(ArchiveEntry(path, "directory", _child_cap(listing) or "", 0,
                                            recorded_mtime(metadata)))
                subdirectories += _children(path, listing, entries, on_unsafe)
            listings = pool.map(lambda sub: _list_directory(api, *sub), subdirectories)
            level = [(path, listing, metadata) for (path, _cap, metadata), listing
                     in zip(subdirectories, listings, strict=True)]
    return entries


def _list_directory(api: WebAPI, path: tuple[str, ...], cap: str | None,
                    metadata: dict[str, Any]) -> dict[str, Any]:
    listing = api.directory(cap) if cap else None
    if listing is None:
        raise RestoreError(f"{'/'.join(path)}: the archive lists a directory the node "
                           "cannot read")
    return listing


def _children(path: tuple[str, ...], listing: dict[str, Any], entries: list[ArchiveEntry],
              on_unsafe: Callable[[str], None]
              ) -> list[tuple[tuple[str, ...], str | None, dict[str, Any]]]:
    """Add the files of ``listing`` to ``entries``; its subdirectories, to list next."""
    subdirectories = []
    for name, (kind, info) in sorted(listing.get("children", {}).items()):
        child = (*path, name)
        if not safe_name(name):
            on_unsafe("/".join(path + (repr(name),)))
        elif kind == "dirnode":
            subdirectories.append((child, _child_cap(info), info.get("metadata") or {}))
        elif kind == "filenode":
            entries.append(_file_entry(child, info))
        else:
            on_unsafe("/".join(child) + f" ({kind})")
    return subdirectories


def _file_entry(path: tuple[str, ...], info: dict[str, Any]) -> ArchiveEntry:
    cap = _child_cap(info)
    if cap is None:
        raise RestoreError(f"{'/'.join(path)}: the archive lists it without a readable cap")
    return ArchiveEntry(path, "file", cap, int(info.get("size") or 0),
                        recorded_mtime(info.get("metadata") or {}))
