"""Kill a governed node for real, mid-run, again and again; then check that nothing was lost.

:func:`crash_and_recover` runs ``tahoe-governor run`` as a process of its own
on the local grid, with one job backing up a fresh tree and one storage server
capped so a run lasts seconds. It waits until the run is uploading, SIGKILLs
the process at a moment drawn from a seeded random generator, starts it again
(over the pidfile the kill left behind), and so on ``kills`` times; then lets
the last start finish the run. What it reports is read from outside the
node: the state database's run records, ``PRAGMA integrity_check`` of both
databases, the ``Latest`` snapshot downloaded through Tahoe's web API and
compared byte for byte with the source, and the bytes the storage servers
hold in their share directories. The test uses it with 3 kills;
``benchmarks/bench_crash.py`` with 20, against a clean run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from tahoe_governor.demo.local_grid import STARTUP_BUDGET, LocalGrid, poll
from tahoe_governor.policy.state_db import StateDatabase, state_db_path
from tests.signals import restore_default_sigint

REPO = Path(__file__).resolve().parents[2]
JOB = "b1"
RUN_BUDGET = 180.0
"""Seconds the last start may take to complete the run."""


@attrs.frozen
class CrashReport:
    """What one crash-and-recover run found, every figure measured from outside."""

    kills: int
    """Kills made: fewer than asked when the run completed before the next one."""
    kill_after_seconds: tuple[float, ...]
    """How long after the run started uploading each kill came."""
    outcomes: tuple[str, ...]
    """The job's run records, oldest first."""
    restored_equal: bool
    """``Latest``, downloaded through the web API, equals the source, byte for byte."""
    restore_error: str | None
    """What could not be downloaded, and why (None when everything was)."""
    integrity: dict[str, str]
    """``PRAGMA integrity_check`` of each database."""
    grid_bytes: int
    """Bytes the run added to the storage servers' share directories."""
    shares_stored_twice: int
    """Shares of the run's files held by more than one server (each extra copy counted)."""
    files_uploaded_last_run: int
    files_reused_last_run: int
    seconds: float


def make_tree(root: Path, files: int, size: int, seed: int) -> None:
    """``files`` files of ``size`` pseudo-random bytes (from ``seed``) in a few directories."""
    rng = random.Random(seed)
    for i in range(files):
        folder = root / f"d{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(rng.randbytes(size))


def share_homes(grid: LocalGrid) -> Counter[tuple[str, str]]:
    """How many servers hold each ``(storage index, share number)``."""
    homes: Counter[tuple[str, str]] = Counter()
    for server in grid.servers:
        for folder, _, names in os.walk(server.nodedir / "storage" / "shares"):
            for name in names:
                if name.isdigit():
                    homes[(os.path.basename(folder), name)] += 1
    return homes


def stored_twice(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> int:
    """Extra copies of the shares of storage indexes that are new in ``after``."""
    old = {index for index, _ in before}
    return sum(n - 1 for (index, _), n in after.items() if index not in old)


def share_bytes(grid: LocalGrid) -> int:
    """Bytes in every storage server's share directory (the grid's storage)."""
    total = 0
    for server in grid.servers:
        for folder, _, names in os.walk(server.nodedir / "storage" / "shares"):
            total += sum(os.path.getsize(os.path.join(folder, n)) for n in names)
    return total


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.load(response)


def _public_job(nodedir: Path) -> dict[str, Any] | None:
    """The job's public status from the running node, or None while it does not answer."""
    try:
        url = (nodedir / "node.url").read_text().strip()
        jobs = _get_json(url + "governor?t=json")["jobs"]
    except (OSError, ValueError, KeyError):
        return None
    return next((job for job in jobs if job["name"] == JOB), None)


def uploading(nodedir: Path) -> bool:
    job = _public_job(nodedir)
    progress = job.get("progress") if job else None
    return bool(job and job["state"] == "running" and progress
                and progress["bytes_uploaded"] > 0)


def servers_connected(nodedir: Path) -> int:
    """How many storage servers the running node's welcome page says it is connected to."""
    try:
        url = (nodedir / "node.url").read_text().strip()
        servers = _get_json(url + "?t=json")["servers"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(1 for s in servers if s["connection_status"].startswith("Connected"))


def completed(nodedir: Path) -> bool:
    """Whether the running node reports a completed run of the job."""
    job = _public_job(nodedir)
    return bool(job and job["last_success"] is not None)


def spawn_node(nodedir: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tahoe_governor.cli.main", "run", str(nodedir)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=restore_default_sigint,
        )


def stop_node(node: subprocess.Popen[bytes]) -> None:
    node.send_signal(signal.SIGTERM)
    try:
        node.wait(STARTUP_BUDGET)
    except subprocess.TimeoutExpired:
        node.kill()
        node.wait()


def cap_url(node_url: str, cap: str, path: str = "") -> str:
    """The web API URL of ``cap`` (and a path of names below it)."""
    return f"{node_url}uri/{urllib.parse.quote(cap, safe='')}{path}"


class RestoreError(Exception):
    """A file or directory of the snapshot could not be downloaded (its path and why)."""


def download_tree(directory_url: str, dest: Path) -> None:
    """Download the directory at ``directory_url`` into ``dest`` through the web API."""
    dest.mkdir(parents=True, exist_ok=True)
    node_url = directory_url.split("uri/")[0]
    try:
        _, info = _get_json(directory_url + "?t=json")
    except urllib.error.HTTPError as e:
        raise RestoreError(f"{dest}: HTTP {e.code}: {e.read()[:300]!r}") from None
    for name, (kind, child) in info["children"].items():
        child_url = cap_url(node_url, child.get("ro_uri") or child["rw_uri"])
        if kind == "dirnode":
            download_tree(child_url, dest / name)
            continue
        try:
            with urllib.request.urlopen(child_url, timeout=60) as response:  # loopback only
                (dest / name).write_bytes(response.read())
        except urllib.error.HTTPError as e:
            raise RestoreError(f"{dest / name}: HTTP {e.code}: {e.read()[:300]!r}") from None


def same_tree(a: Path, b: Path) -> bool:
    """Whether two local trees hold the same files with the same bytes."""
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return files(a) == files(b)


def integrity(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def crash_and_recover(
    grid: LocalGrid, workdir: Path, kills: int, seed: int,
    files: int = 48, size: int = 50_000, kill_window: tuple[float, float] = (1.0, 6.0),
) -> CrashReport:
    """Back up a fresh tree, SIGKILLing the node ``kills`` times mid-run; see the module doc."""
    started = time.monotonic()
    rng = random.Random(seed)
    source = workdir / "source"
    make_tree(source, files, size, seed)
    capped = grid.servers[0]
    nodedir = grid.make_client_dir(
        workdir / "client",
        extra_cfg=(
            "[backups]\n"
            f"{JOB}.source = {source}\n"
            f"{JOB}.target = backup:photos\n"
            f"{JOB}.frequency = 1week\n"
            "[bandwidth]\n"
            f"peer.{capped.tubid}.up = 800kbps\n"
        ),
    )
    dircap = grid.create_directory()
    stored_before = share_bytes(grid)
    homes_before = share_homes(grid)
    (nodedir / "private" / "aliases").write_text(f"backup: {dircap}\n")
    log = workdir / "node.log"
    waits = []
    for _ in range(kills):
        node = spawn_node(nodedir, log)
        try:
            poll("the run to upload or complete",
                 lambda: uploading(nodedir) or completed(nodedir),
                 time.monotonic() + STARTUP_BUDGET)
            if completed(nodedir):
                break  # what was left took less than the time to the next kill
            wait = rng.uniform(*kill_window)
            time.sleep(wait)
            waits.append(wait)
        finally:
            node.kill()  # SIGKILL: no stop hook, no cleanup, the pidfile stays
            node.wait()
    node = spawn_node(nodedir, log)
    try:
        poll("the run to complete", lambda: completed(nodedir), time.monotonic() + RUN_BUDGET)
        # The last start may find the run already complete: restore once it has met
        # the grid, as a user would.
        poll("the node to connect to every server",
             lambda: servers_connected(nodedir) == len(grid.servers),
             time.monotonic() + STARTUP_BUDGET)
        job = _public_job(nodedir)
        assert job is not None
        progress = job["progress"] or {}
        node_url = (nodedir / "node.url").read_text().strip()
        restored = workdir / "restored"
        restore_error = None
        try:
            download_tree(cap_url(node_url, dircap, "/photos/Latest"), restored)
        except RestoreError as e:
            restore_error = str(e)
    finally:
        stop_node(node)
    with StateDatabase(state_db_path(str(nodedir)), read_only=True) as db:
        outcomes = tuple(run.outcome for run in reversed(db.runs(JOB)))
    private = nodedir / "private"
    return CrashReport(
        kills=len(waits),
        kill_after_seconds=tuple(round(w, 2) for w in waits),
        outcomes=outcomes,
        restored_equal=restore_error is None and same_tree(source, restored),
        restore_error=restore_error,
        integrity={name: integrity(private / name)
                   for name in ("governor.sqlite", "backupdb.sqlite")},
        grid_bytes=share_bytes(grid) - stored_before,
        shares_stored_twice=stored_twice(homes_before, share_homes(grid)),
        files_uploaded_last_run=int(progress.get("files_uploaded", 0)),
        files_reused_last_run=int(progress.get("files_reused", 0)),
        seconds=round(time.monotonic() - started, 1),
    )
