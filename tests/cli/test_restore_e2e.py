"""``tahoe-governor restore`` for real: a governed node process, two archives, the local grid.

One node (``tahoe-governor run``) backs up a tree, the tree changes, and a
second run makes a second archive; the tests then restore through that
running node as a user would, with the command in a process of its own.
Bytes received are read from the node's ``/metrics`` (what its Foolscap
connections read from the storage servers); bytes sent at the servers from
their kernels (``ss``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tahoe_governor.cli.restore_manifest import manifest_path
from tahoe_governor.cli.restore_writer import PARTIAL_PREFIX
from tahoe_governor.demo.local_grid import STARTUP_BUDGET, LocalGrid, poll
from tests.full_disk import small_filesystem
from tests.node.crash_harness import (
    completed,
    make_tree,
    servers_connected,
    spawn_node,
    stop_node,
)
from tests.signals import restore_default_sigint
from tests.socket_counters import SS, bytes_sent_on_port
from tests.system_programs import require_programs

REPO = Path(__file__).resolve().parents[2]
FILES, FILE_BYTES = 24, 60_000
RUN_BUDGET = 120.0
RESTORE_BUDGET = 120.0


@attrs.frozen
class BackedUp:
    """The running node with its two archives, and each archive's tree kept locally."""

    nodedir: Path
    node_url: str
    archives: tuple[str, str]
    """The two archive names, oldest first (the second is Latest)."""
    first_tree: Path
    latest_tree: Path


def governor(*argv: str, timeout: float = RESTORE_BUDGET) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tahoe_governor.cli.main", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def spawn_restore(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tahoe_governor.cli.main", "restore", *argv],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=restore_default_sigint)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.load(response)


def archive_names(node_url: str, nodedir: Path) -> list[str]:
    rootcap = (nodedir / "private" / "aliases").read_text().split()[1]
    url = f"{node_url}uri/{urllib.request.quote(rootcap, safe='')}/photos/Archives?t=json"
    try:
        return sorted(get_json(url)[1]["children"])
    except OSError:
        return []


def last_success(nodedir: Path) -> Any:
    """When job b1 last completed a run, as the running node says."""
    url = (nodedir / "node.url").read_text().strip()
    jobs = get_json(url + "governor?t=json")["jobs"]
    return next(job["last_success"] for job in jobs if job["name"] == "b1")


def metric_total(node_url: str, direction: str) -> int:
    """The wire bytes the node's connections to every storage server have moved in
    ``direction`` (``up``: sent, ``down``: read), from its /metrics."""
    with urllib.request.urlopen(node_url + "metrics", timeout=10) as response:
        text = response.read().decode()
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "tahoe_governor_peer_bytes"
                   for sample in family.samples
                   if sample.name.endswith("_total") and sample.labels["direction"] == direction))


def bytes_received(node_url: str) -> int:
    """What the node's connections have read from every storage server (its /metrics)."""
    return metric_total(node_url, "down")


class Mtime(float):
    """A modification time that equals another within 20 microseconds: a recorded float
    time set again with ``os.utime`` may come back a microsecond off (and rounding both
    to a fixed number of places can then differ in the last one)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(self - other) < 2e-5

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = float.__hash__


def tree_state(root: Path) -> dict[str, Any]:
    """Each file's bytes and mtime (to 20 microseconds), each directory, under ``root``."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_file():
            found[key] = (path.read_bytes(), Mtime(path.stat().st_mtime))
        else:
            found[key] = "dir"
    return found


def files_in(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def node_after_first_run(local_grid: LocalGrid, work: Path, source: Path
                         ) -> tuple[Path, subprocess.Popen[bytes]]:
    """A governed node process (NODEDIR under ``work``) whose job b1, ``source`` to
    backup:photos, has completed its first run; the caller stops it."""
    nodedir = local_grid.make_client_dir(work / "client", extra_cfg=(
        f"[backups]\nb1.source = {source}\nb1.target = backup:photos\nb1.frequency = 1week\n"))
    (nodedir / "private" / "aliases").write_text(f"backup: {local_grid.create_directory()}\n")
    node = spawn_node(nodedir, work / "node.log")
    try:
        poll("the first run", lambda: completed(nodedir), time.monotonic() + RUN_BUDGET)
    except BaseException:
        stop_node(node)
        raise
    return nodedir, node


@pytest.fixture(scope="module")
def backed_up(local_grid: LocalGrid, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[BackedUp]:
    """A governed node process that has made two archives of a changing tree."""
    work = tmp_path_factory.mktemp("restore")
    source = work / "source"
    make_tree(source, FILES, FILE_BYTES, seed=12)
    (source / "tiny.txt").write_bytes(b"a literal cap holds me")
    (source / "empty").mkdir()
    nodedir, node = node_after_first_run(local_grid, work, source)
    try:
        node_url = (nodedir / "node.url").read_text().strip()
        first = archive_names(node_url, nodedir)
        assert len(first) == 1, first
        first_tree = work / "first"
        shutil.copytree(source, first_tree)  # copy2: mtimes kept
        (source / "d0" / "f0.bin").write_bytes(os.urandom(FILE_BYTES))
        (source / "d1" / "f1.bin").unlink()
        (source / "d2" / "new.bin").write_bytes(os.urandom(5000))
        # Archives are named to the second: the second run's must differ.
        poll("the first archive's second to pass",
             lambda: time.strftime("%Y-%m-%d_%H:%M:%SZ", time.gmtime()) > first[0],
             time.monotonic() + 5)
        first_success = last_success(nodedir)
        started = governor("start", str(nodedir), "b1", "--force", timeout=30)
        assert started.returncode == 0, started.stderr
        poll("the second run", lambda: last_success(nodedir) != first_success,
             time.monotonic() + RUN_BUDGET)
        poll("the node to connect to every server",
             lambda: servers_connected(nodedir) == len(local_grid.servers),
             time.monotonic() + STARTUP_BUDGET)
        names = archive_names(node_url, nodedir)
        yield BackedUp(nodedir, node_url, (names[0], names[1]), first_tree, source)
    finally:
        stop_node(node)


@pytest.mark.e2e
def test_each_archive_restores_byte_identical_with_mtimes(backed_up, tmp_path):
    """--archive of the first archive and of the second give their own trees, byte for byte,
    with the files' and directories' modification times; latest is the second."""
    nd = str(backed_up.nodedir)
    first = governor("restore", nd, "b1", str(tmp_path / "first"),
                     "--archive", backed_up.archives[0])
    assert first.returncode == 0, first.stderr
    assert tree_state(tmp_path / "first") == tree_state(backed_up.first_tree)
    latest = governor("restore", nd, "b1", str(tmp_path / "latest"))
    assert latest.returncode == 0, latest.stderr
    assert f"Restoring archive {backed_up.archives[1]} (Latest)" in latest.stdout
    assert tree_state(tmp_path / "latest") == tree_state(backed_up.latest_tree)


def _wait_for_records(nodedir: Path, dest: Path, count: int, process: subprocess.Popen) -> None:
    manifest = manifest_path(str(nodedir), dest)

    def records() -> int:
        return manifest.read_text().count('"sha256"') if manifest.exists() else 0

    poll(f"{count} files restored", lambda: records() >= count or process.poll() is not None,
         time.monotonic() + RESTORE_BUDGET)
    assert process.poll() is None, process.communicate()


@pytest.mark.e2e
def test_interrupted_restore_continues_and_detects_tampering(backed_up, tmp_path):
    """Stopped by SIGINT, then SIGKILLed, a slow restore run again completes the tree and
    receives only what was not finished; a restored file edited since (same size and
    mtime) is detected and downloaded again, and nothing else is."""
    nd, dest = str(backed_up.nodedir), tmp_path / "dest"
    slow = ("--bandwidth", "400kB/s", "--parallel", "2")
    spawned = time.monotonic()
    interrupted = spawn_restore(nd, "b1", str(dest), *slow)
    _wait_for_records(backed_up.nodedir, dest, 5, interrupted)
    interrupted.send_signal(signal.SIGINT)
    # --bandwidth held: no more than its pace since the command started, plus a burst.
    records = manifest_path(nd, dest).read_text().splitlines()[1:]
    restored = sum(json.loads(line)["size"] for line in records)
    assert restored <= 400_000 * (time.monotonic() - spawned) + 65_536, restored
    _, err = interrupted.communicate(timeout=30)
    assert interrupted.returncode == 130, err
    assert "run the same command again to continue" in err
    assert not list(dest.rglob(PARTIAL_PREFIX + "*"))

    killed = spawn_restore(nd, "b1", str(dest), *slow)
    _wait_for_records(backed_up.nodedir, dest, FILES // 2, killed)
    killed.kill()
    killed.communicate()
    finished = files_in(dest)
    source_sizes = {str(p.relative_to(backed_up.latest_tree)): p.stat().st_size
                    for p in backed_up.latest_tree.rglob("*") if p.is_file()}
    remaining = sum(size for name, size in source_sizes.items() if name not in finished)
    assert remaining < sum(source_sizes.values()) * 0.6

    before = bytes_received(backed_up.node_url)
    again = governor("restore", nd, "b1", str(dest))
    received = bytes_received(backed_up.node_url) - before
    assert again.returncode == 0, again.stderr
    assert tree_state(dest) == tree_state(backed_up.latest_tree)
    # Reading the archive's directories costs the same on every run: measured on one with
    # nothing left to download.
    before = bytes_received(backed_up.node_url)
    idle = governor("restore", nd, "b1", str(dest))
    listing = bytes_received(backed_up.node_url) - before
    assert f"0 files to download (0 B), {len(source_sizes)} already restored and verified" \
        in idle.stdout
    assert listing < 0.1 * sum(source_sizes.values())
    # Hash trees and Foolscap framing add well under 30 % to the files' bytes.
    assert received - listing <= remaining * 1.3, (received, listing, remaining)

    tampered = dest / "d3" / "f3.bin"
    st = tampered.stat()
    content = bytearray(tampered.read_bytes())
    content[100] ^= 0xFF
    tampered.write_bytes(bytes(content))
    os.utime(tampered, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = bytes_received(backed_up.node_url)
    repaired = governor("restore", nd, "b1", str(dest))
    received = bytes_received(backed_up.node_url) - before
    assert repaired.returncode == 0, repaired.stderr
    assert "downloading it again: d3/f3.bin" in repaired.stdout
    assert tree_state(dest) == tree_state(backed_up.latest_tree)
    # One file's bytes came again, and only those (the listing varies by a few kB).
    assert FILE_BYTES * 0.9 <= received - listing <= FILE_BYTES * 1.3, (received, listing)


@pytest.mark.e2e
def test_peer_down_caps_hold_at_the_sending_servers(backed_up, local_grid, tmp_path):
    """With every storage server capped at 50 kB/s down, each server's kernel, in the steady
    part of a restore, sent at most the cap's pace (and the servers did send)."""
    require_programs((SS,), ("iproute2",))
    nd, cap = str(backed_up.nodedir), 50_000
    for server in local_grid.servers:
        limited = governor("limit", nd, "peer", server.tubid, "down", "50kB/s", timeout=30)
        assert limited.returncode == 0, limited.stderr
    try:
        ports = [server.tub_port for server in local_grid.servers]
        restore = spawn_restore(nd, "b1", str(tmp_path / "dest"))
        samples = []
        while restore.poll() is None:
            samples.append((time.monotonic(), [bytes_sent_on_port(p) for p in ports]))
            time.sleep(0.2)
        _, err = restore.communicate()
        assert restore.returncode == 0, err
    finally:
        for server in local_grid.servers:
            governor("limit", nd, "peer", server.tubid, "down", "clear", timeout=30)
    # The steady part: from 2 s in (buffers filled) to the last sample while it ran.
    start = next(i for i, (t, _) in enumerate(samples) if t - samples[0][0] >= 2.0)
    (t0, sent0), (t1, sent1) = samples[start], samples[-1]
    rates = [(b - a) / (t1 - t0) for a, b in zip(sent0, sent1, strict=True)]
    assert all(rate <= cap * 1.1 for rate in rates), rates
    assert sum(rates) >= cap, rates  # the restore did flow through capped servers


@pytest.mark.e2e
def test_clear_errors(backed_up, local_grid, tmp_path):
    """An unknown job or archive names the known ones; a node that is not running says how
    to start it; nothing is created in DEST by any of them."""
    nd, dest = str(backed_up.nodedir), tmp_path / "dest"
    job = governor("restore", nd, "b7", str(dest))
    assert job.returncode == 1
    assert "unknown job 'b7': expected one of b1" in job.stderr
    archive = governor("restore", nd, "b1", str(dest), "--archive", "2001-01-01_00:00:00Z")
    assert archive.returncode == 1
    assert (f"no archive '2001-01-01_00:00:00Z' in backup:photos/Archives: expected 'latest' "
            f"or one of {backed_up.archives[1]}, {backed_up.archives[0]}") in archive.stderr
    idle = local_grid.make_client_dir(tmp_path / "idle")
    missing = governor("restore", str(idle), "b1", str(dest))
    assert missing.returncode == 1
    assert f"the node is not running (start it with 'tahoe-governor run {idle}'" \
        in missing.stderr
    assert not dest.exists()


@pytest.mark.e2e
def test_a_full_disk_stops_with_nothing_half_written(backed_up, tmp_path):
    """A destination that runs out of room mid-restore (a tmpfs with few inodes) ends with a
    clear error; no temporary file is left, and every file there is whole and correct."""
    with small_filesystem(tmp_path / "small", size=8 * 1024 * 1024, inodes=20) as disk:
        dest = disk.path / "dest"
        full = governor("restore", str(backed_up.nodedir), "b1", str(dest), "--parallel", "1")
        assert full.returncode == 1
        assert "no space left on the device" in full.stderr
        assert "nothing half-written was left" in full.stderr
        assert not list(dest.rglob(PARTIAL_PREFIX + "*"))
        restored = files_in(dest)
        assert 0 < len(restored) < FILES
        for name in restored:
            assert (dest / name).read_bytes() == (backed_up.latest_tree / name).read_bytes()


def sheet_commands(sheet: str, newnode: Path) -> tuple[list[list[str]], dict[str, str]]:
    """The numbered commands of a recovery sheet (NEWNODE filled in), and each job's target
    as the sheet names it (``b1: backup:photos``)."""
    commands, targets = [], {}
    jobs = sheet.split("\nJobs\n", 1)[1].split("\n\n", 1)[0]
    for line in jobs.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            job, target = line.strip().split(": ", 1)
            targets[job] = target
    for line in sheet.splitlines():
        step = line.strip()
        if step[:3] in ("1. ", "2. ", "3. ", "4. "):
            command = step[3:].split("   (")[0]  # without the note in parentheses
            commands.append([str(newnode) if word == "NEWNODE" else word
                             for word in shlex.split(command)])
    return commands, targets


@pytest.mark.e2e
def test_a_new_node_made_from_the_recovery_sheet_alone_restores_latest(backed_up, tmp_path):
    """With nothing but the recovery sheet, in docs/restore.md's order: the sheet's
    create-client, the node run (no jobs yet), the sheet's add-alias, and a restore of the
    job's target as the sheet names it give back the latest archive on a new node, byte for
    byte, with modification times."""
    printed = governor("recovery-sheet", str(backed_up.nodedir), timeout=60)
    assert printed.returncode == 0, printed.stderr
    newnode, dest = tmp_path / "new", tmp_path / "restored"
    (create, run, add_alias, restore), targets = sheet_commands(printed.stdout, newnode)
    assert create[:2] == ["tahoe", "create-client"] and add_alias[3] == "add-alias"
    assert run == ["tahoe-governor", "run", str(newnode)]
    assert restore == ["tahoe-governor", "restore", str(newnode), "backup:photos", "DEST"]
    assert targets == {"b1": "backup:photos"}
    # This grid's nodes serve their web API on loopback ports of their own choosing.
    tahoe = [sys.executable, "-m", "allmydata.scripts.runner"]
    made = subprocess.run([*tahoe, *create[1:-1], "--webport=tcp:0:interface=127.0.0.1",
                           create[-1]], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    with open(newnode / "tahoe.cfg", "a", encoding="utf-8") as cfg:
        cfg.write("\n[client]\nforce_foolscap = true\n")
    node = spawn_node(newnode, tmp_path / "new.log")
    try:
        poll("the new node to connect to every server",
             lambda: (newnode / "node.url").exists() and servers_connected(newnode) == 3,
             time.monotonic() + STARTUP_BUDGET)
        aliased = subprocess.run([*tahoe, *add_alias[1:]], capture_output=True, text=True,
                                 timeout=60)
        assert aliased.returncode == 0, aliased.stdout + aliased.stderr
        restored = governor("restore", str(newnode), targets["b1"], str(dest))
        assert restored.returncode == 0, restored.stderr
    finally:
        stop_node(node)
    assert tree_state(dest) == tree_state(backed_up.latest_tree)
