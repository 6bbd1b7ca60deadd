"""The restore command's decisions and file handling, over an in-memory grid."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import threading
from pathlib import Path
from typing import IO, Any

import pytest
from allmydata.interfaces import DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE

from tahoe_governor.cli.main import build_parser
from tahoe_governor.cli.restore import (
    EXIT_INTERRUPTED,
    LARGE_FILE_BYTES,
    RestoreRequest,
    restore,
)
from tahoe_governor.cli.restore_archive import RestoreError
from tahoe_governor.cli.restore_manifest import RestoreManifest, manifest_path
from tahoe_governor.cli.restore_rate import SharedRate
from tahoe_governor.cli.restore_writer import (
    PARTIAL_PREFIX,
    DiskFullError,
    write_restored_file,
)
from tests.cli.restore_fakes import (
    FakeGrid,
    add_archives,
    fake_dircap,
    file_mtime,
    make_backup_node,
)

OLD = "2026-11-01_22:00:00Z"
NEW = "2026-11-08_22:00:00Z"
OLD_TREE: dict[str, Any] = {"a.txt": b"first version", "pics": {"p1.jpg": b"x" * 5000,
                                                                 "empty": {}}}
NEW_TREE: dict[str, Any] = {"a.txt": b"second version!", "pics": {"p1.jpg": b"x" * 5000,
                                                                   "p2.jpg": b"y" * 7000}}


@pytest.fixture
def grid() -> FakeGrid:
    return FakeGrid()


@pytest.fixture
def nodedir(tmp_path: Path, grid: FakeGrid) -> Path:
    rootcap = fake_dircap(7)
    node = tmp_path / "node"
    make_backup_node(node, rootcap)
    add_archives(grid, rootcap, {OLD: OLD_TREE, NEW: NEW_TREE}, latest=NEW)
    return node


def run(grid: FakeGrid, nodedir: Path, dest: Path, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    request = RestoreRequest(str(nodedir), options.pop("job", "b1"), dest, **options)
    status = restore(request, grid, out, err)
    return status, out.getvalue(), err.getvalue()


def tree_of(root: Path) -> dict[str, Any]:
    """Every file's bytes and mtime, and every directory, under ``root``."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        found[key] = (path.read_bytes(), path.stat().st_mtime) if path.is_file() else "dir"
    return found


def expected(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in tree.items():
        key = prefix + name
        if isinstance(value, bytes):
            found[key] = (value, pytest.approx(file_mtime(value), abs=1e-6))
        else:
            found[key] = "dir"
            found.update(expected(value, key + "/"))
    return found


def test_each_archive_restores_its_own_tree_with_recorded_mtimes(grid, nodedir, tmp_path):
    """--archive picks an archive by its timestamp, and latest the one Latest links to: each
    restores its files, empty directories and the mtimes tahoe backup recorded (not the
    link times), and directories get their recorded mtimes too."""
    status, out, _ = run(grid, nodedir, tmp_path / "old", archive=OLD)
    assert status == 0
    assert f"Restoring archive {OLD} of backup:photos" in out
    assert tree_of(tmp_path / "old") == expected(OLD_TREE)
    assert (tmp_path / "old" / "pics").stat().st_mtime == pytest.approx(1_500_000_000.5)

    status, out, _ = run(grid, nodedir, tmp_path / "new")
    assert status == 0
    assert f"Restoring archive {NEW} (Latest)" in out
    assert tree_of(tmp_path / "new") == expected(NEW_TREE)


def test_unknown_archive_names_the_known_ones(grid, nodedir, tmp_path):
    """An archive that does not exist is refused, naming the archives there are, newest
    first; nothing is created."""
    with pytest.raises(RestoreError, match=f"no archive '2020-01-01' in backup:photos/Archives: "
                                           f"expected 'latest' or one of {NEW}, {OLD}"):
        run(grid, nodedir, tmp_path / "dest", archive="2020-01-01")
    assert not (tmp_path / "dest").exists()


def test_unknown_job_names_the_jobs_of_tahoe_cfg(grid, nodedir, tmp_path):
    """A job that is not in [backups] is refused, naming the jobs that are."""
    with pytest.raises(RestoreError, match="unknown job 'b9': expected one of b1, b2"):
        run(grid, nodedir, tmp_path / "dest", job="b9")


def test_a_target_stands_for_a_job_on_a_new_machine(grid, nodedir, tmp_path):
    """JOB may be the target itself (alias:path), as on a machine whose tahoe.cfg has no jobs."""
    (nodedir / "tahoe.cfg").write_text("[node]\nnickname = new\n")
    status, _, _ = run(grid, nodedir, tmp_path / "dest", job="backup:photos")
    assert status == 0
    assert tree_of(tmp_path / "dest") == expected(NEW_TREE)


def test_a_target_without_archives_says_so(grid, nodedir, tmp_path):
    """A job whose target does not exist yet (never completed a run) gets a clear error."""
    with pytest.raises(RestoreError, match="backup target backup:other does not exist"):
        run(grid, nodedir, tmp_path / "dest", job="b2")


def test_existing_files_are_kept_unless_overwrite(grid, nodedir, tmp_path):
    """A file of DEST that the restore did not write stops the restore before anything is
    downloaded or changed; --overwrite replaces it."""
    dest = tmp_path / "dest"
    (dest / "pics").mkdir(parents=True)
    (dest / "pics" / "p2.jpg").write_bytes(b"mine")
    with pytest.raises(RestoreError, match=r"already has 1 of the archive's paths.*\n  pics/p2"):
        run(grid, nodedir, dest)
    assert grid.opened == [] and (dest / "pics" / "p2.jpg").read_bytes() == b"mine"
    assert sorted(p.name for p in dest.rglob("*")) == ["p2.jpg", "pics"]

    status, _, _ = run(grid, nodedir, dest, overwrite=True)
    assert status == 0
    assert (dest / "pics" / "p2.jpg").read_bytes() == b"y" * 7000


def test_a_directory_is_never_replaced_by_a_file(grid, nodedir, tmp_path):
    """Where the archive has a file and DEST a directory, even --overwrite refuses."""
    dest = tmp_path / "dest"
    (dest / "a.txt").mkdir(parents=True)
    with pytest.raises(RestoreError, match="a.txt \\(a directory, where the archive has a file"):
        run(grid, nodedir, dest, overwrite=True)


def test_run_again_skips_verified_files_and_fetches_changed_ones(grid, nodedir, tmp_path):
    """A second run downloads nothing; a restored file edited since (same size, same mtime)
    or removed is downloaded again, and the others are verified, not fetched."""
    dest = tmp_path / "dest"
    assert run(grid, nodedir, dest)[0] == 0
    assert len(grid.opened) == 3

    grid.opened.clear()
    status, out, _ = run(grid, nodedir, dest)
    assert status == 0 and grid.opened == []
    assert "0 files to download (0 B), 3 already restored and verified" in out

    tampered = dest / "pics" / "p1.jpg"
    before = tampered.stat()
    tampered.write_bytes(b"X" + b"x" * 4999)
    os.utime(tampered, ns=(before.st_atime_ns, before.st_mtime_ns))
    (dest / "a.txt").unlink()
    grid.bytes_sent = 0
    status, out, _ = run(grid, nodedir, dest)
    assert status == 0
    assert "changed since it was restored, downloading it again: pics/p1.jpg" in out
    assert grid.bytes_sent == 5000 + len(b"second version!")
    assert tree_of(dest) == expected(NEW_TREE)


def test_the_manifest_holds_no_cap_and_lives_in_the_node(grid, nodedir, tmp_path):
    """What the restore records is under NODEDIR/private, not in DEST, and holds no cap."""
    dest = tmp_path / "dest"
    run(grid, nodedir, dest)
    manifest = manifest_path(str(nodedir), dest)
    assert manifest.parent == nodedir / "private" / "restores"
    assert "URI:" not in manifest.read_text()
    assert not any(p.name.startswith(".") for p in dest.rglob("*"))


def test_what_a_killed_restore_left_is_removed_and_redone(grid, nodedir, tmp_path):
    """A temporary file left by a kill disappears on the next run; a file whose record was
    written but which was never renamed into place is downloaded."""
    dest = tmp_path / "dest"
    (dest / "pics").mkdir(parents=True)
    (dest / "pics" / f"{PARTIAL_PREFIX}123-456").write_bytes(b"half")
    assert run(grid, nodedir, dest)[0] == 0
    assert not list(dest.rglob(PARTIAL_PREFIX + "*"))
    assert tree_of(dest) == expected(NEW_TREE)


def test_path_restores_one_file_or_one_directory(grid, nodedir, tmp_path):
    """--path restores only that part of the archive, at the same place under DEST; an
    unknown path names what is there."""
    status, out, err = run(grid, nodedir, tmp_path / "one", subpath=("pics", "p2.jpg"))
    assert status == 0, out + err
    assert tree_of(tmp_path / "one") == {
        "pics": "dir", "pics/p2.jpg": (b"y" * 7000, pytest.approx(file_mtime(b"y" * 7000)))}
    assert run(grid, nodedir, tmp_path / "dir", subpath=("pics",))[0] == 0
    assert sorted(tree_of(tmp_path / "dir")) == ["pics", "pics/p1.jpg", "pics/p2.jpg"]
    with pytest.raises(RestoreError, match="no 'pics/p3.jpg' in archive .*: pics holds "
                                           "p1.jpg, p2.jpg"):
        run(grid, nodedir, tmp_path / "none", subpath=("pics", "p3.jpg"))


def test_a_file_that_fails_does_not_stop_the_others(grid, nodedir, tmp_path):
    """A file the grid cannot deliver is reported (exit 1); the others are restored, and
    the next run fetches only the missing one."""
    dest = tmp_path / "dest"
    p2 = grid.directory(fake_dircap(7), ("photos", "Latest", "pics"))["children"]["p2.jpg"]
    grid.broken.add(p2[1]["ro_uri"])
    status, _, err = run(grid, nodedir, dest, parallel=3)
    assert status == 1
    assert "1 could not be downloaded:\n  pics/p2.jpg: the node answered 410" in err
    assert (dest / "a.txt").exists() and not (dest / "pics" / "p2.jpg").exists()
    grid.broken.clear()
    grid.opened.clear()
    assert run(grid, nodedir, dest)[0] == 0
    assert grid.opened == [p2[1]["ro_uri"]]


def test_large_means_more_than_tahoes_segment():
    """A large file is one of more than Tahoe's default immutable segment."""
    assert LARGE_FILE_BYTES == DEFAULT_IMMUTABLE_MAX_SEGMENT_SIZE


def test_at_most_a_quarter_of_the_files_in_flight_are_large(tmp_path):
    """With 8 files in flight, no more than 2 files above one segment download at once (each
    waits for a third to join it, which would come at once without the limit), while the
    small files are not held back; every file is restored."""
    grid, rootcap = FakeGrid(), fake_dircap(3)
    large = {f"big{i}.bin": bytes([i]) * (LARGE_FILE_BYTES + 1) for i in range(5)}
    small = {f"small{i}.txt": b"s" * (i + 1) for i in range(20)}
    make_backup_node(tmp_path / "node", rootcap)
    add_archives(grid, rootcap, {NEW: {**large, **small}}, latest=NEW)
    original, joined = grid.open_file, threading.Condition()
    large_open = [0, 0]  # now, most at once
    small_done_while_large_open = []

    class LargeStream(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            if self.tell() == 0:
                with joined:
                    joined.wait_for(lambda: large_open[0] > 2, timeout=0.1)
            return super().read(n)

        def close(self) -> None:
            with joined:
                large_open[0] -= 1
            super().close()

    def open_file(cap: str) -> IO[bytes]:
        data = original(cap).read()
        if len(data) <= LARGE_FILE_BYTES:
            if large_open[0]:
                small_done_while_large_open.append(cap)
            return io.BytesIO(data)
        with joined:
            large_open[0] += 1
            large_open[1] = max(large_open)
            joined.notify_all()
        return LargeStream(data)

    grid.open_file = open_file  # type: ignore[method-assign]
    status, out, err = run(grid, tmp_path / "node", tmp_path / "dest", parallel=8)
    assert status == 0, out + err
    assert large_open[1] == 2
    assert small_done_while_large_open
    assert tree_of(tmp_path / "dest") == expected({**large, **small})


def test_unusable_names_from_the_grid_are_skipped(grid, nodedir, tmp_path):
    """A child named '..' cannot escape DEST: it is skipped and reported."""
    latest = grid.directory(fake_dircap(7), ("photos", "Latest"))
    grid.link(latest["ro_uri"], "..", grid.add_file(b"escape"), {})
    status, _, err = run(grid, nodedir, tmp_path / "dest")
    assert status == 0
    assert "skipped, not a usable local name: '..'" in err
    assert not (tmp_path / "escape").exists() and not (tmp_path / "..").is_file()


def test_ctrl_c_stops_and_reports_how_to_continue(grid, nodedir, tmp_path):
    """Ctrl-C while a file streams stops the downloads, leaves no temporary file under DEST,
    says to run the command again (exit 130), and the next run completes the tree."""
    original = grid.open_file

    class SlowStream(io.BytesIO):
        """A byte a millisecond, and a Ctrl-C to the main thread (where Python handles it)
        with the first: the stop comes long before the second file is done."""

        def read(self, n: int = -1) -> bytes:
            if self.tell() == 0:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            threading.Event().wait(0.001)
            return super().read(1)

    grid.open_file = lambda cap: SlowStream(original(cap).read())  # type: ignore[method-assign]
    dest = tmp_path / "dest"
    handler_before = signal.getsignal(signal.SIGINT)
    status, _, err = run(grid, nodedir, dest, parallel=1)
    assert status == EXIT_INTERRUPTED
    assert re.search(r"Interrupted after restoring [01] of 3 files", err), err
    assert "run the same command again to continue" in err
    assert not list(dest.rglob(PARTIAL_PREFIX + "*"))
    assert signal.getsignal(signal.SIGINT) is handler_before  # the restore put it back
    grid.open_file = original  # type: ignore[method-assign]
    assert run(grid, nodedir, dest)[0] == 0
    assert tree_of(dest) == expected(NEW_TREE)


class _ENOSPCAfter:
    """An ``os.write`` stand-in: writes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room

    def __call__(self, fd: int, data: memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return os.write(fd, data[:n])


def test_a_full_disk_leaves_nothing_half_written(tmp_path):
    """When the disk fills mid-file the temporary file is removed, the final name never
    appears, and the manifest has no record of the file."""
    manifest = RestoreManifest(tmp_path / "m.jsonl", tmp_path)
    final = tmp_path / "big.bin"
    with pytest.raises(DiskFullError):
        write_restored_file(io.BytesIO(b"z" * 200_000), final, "big.bin", "URI:CHK:x", 200_000,
                            None, manifest, SharedRate(None), threading.Event(), lambda n: None,
                            write=_ENOSPCAfter(70_000))
    assert list(tmp_path.iterdir()) == [tmp_path / "m.jsonl"]
    assert manifest.record_for("big.bin") is None


def test_a_short_download_is_not_kept(tmp_path):
    """A file whose download ends before the archive's size is an error; nothing is kept."""
    manifest = RestoreManifest(tmp_path / "m.jsonl", tmp_path)
    with pytest.raises(ValueError, match="sent 10 bytes where the archive lists 20"):
        write_restored_file(io.BytesIO(b"z" * 10), tmp_path / "f", "f", "URI:CHK:x", 20, None,
                            manifest, SharedRate(None), threading.Event(), lambda n: None)
    assert list(tmp_path.iterdir()) == [tmp_path / "m.jsonl"]


def test_shared_rate_holds_every_thread_to_one_rate():
    """Bytes paid by any caller pass at the rate plus one burst: 100 kB at 10 kB/s from a
    full 4 KiB burst takes (100_000 - 4096) / 10_000 s of sleeping."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    rate = SharedRate(10_000, clock=lambda: now[0])
    for _ in range(25):
        rate.pay(4_000, sleep)
    assert sum(slept) == pytest.approx((100_000 - 4096) / 10_000, abs=0.01)
    assert len(slept) < 100
    assert rate.read_size == 4096
    assert SharedRate(None).read_size == 64 * 1024


def test_command_line_reads_every_option(tmp_path):
    """The parser turns the options into the request's values, and refuses a bad rate."""
    args = build_parser().parse_args(
        ["restore", str(tmp_path), "b1", str(tmp_path / "d"), "--archive", OLD, "--path",
         "pics/p1.jpg", "--overwrite", "--bandwidth", "200kbps", "--parallel", "3"])
    assert (args.archive, args.subpath, args.overwrite, args.bandwidth, args.parallel) == (
        OLD, ("pics", "p1.jpg"), True, 25_000, 3)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["restore", str(tmp_path), "b1", "d", "--bandwidth", "50%"])


def test_a_connection_cut_mid_file_is_a_failure_not_a_success(grid, nodedir, tmp_path):
    """The node closing a response early (http.client's IncompleteRead) fails that file:
    reported, exit 1, no temporary file, the final name never written."""
    import http.client

    original = grid.open_file

    class CutStream(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            raise http.client.IncompleteRead(b"", 7000)

    def open_file(cap: str) -> IO[bytes]:
        stream = original(cap)
        return CutStream() if len(stream.getvalue()) == 7000 else stream

    grid.open_file = open_file  # type: ignore[method-assign]
    dest = tmp_path / "dest"
    status, _, err = run(grid, nodedir, dest)
    assert status == 1
    assert "1 could not be downloaded:\n  pics/p2.jpg: IncompleteRead" in err
    assert not (dest / "pics" / "p2.jpg").exists()
    assert not list(dest.rglob(PARTIAL_PREFIX + "*"))
