"""The walker on a real in-process Tahoe grid: backups, reuse, skips, tahoe backup's backupdb."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

import pytest
from allmydata.immutable.upload import Data, FileName
from allmydata.test.cli.common import CLITestMixin
from twisted.trial import unittest

from tahoe_governor.backup import BackupFailed, JobThrottle, SourceError, TargetError
from tahoe_governor.backup import uploadable as uploadable_module
from tahoe_governor.backup.grid_operations import NodeGridOperations
from tahoe_governor.backup.tree import list_directory
from tahoe_governor.backup.uploadable import ByteSource, FileSource

from .grid import WalkerGridMixin, local_tree, read_tree, run_in_real_pool, write_tree

pytestmark = pytest.mark.e2e

TREE = {
    "parent/subdir/foo.txt": b"foo",
    "parent/subdir/bar.txt": b"bar\n" * 1000,
    "parent/blah.txt": b"blah",
    "big.bin": os.urandom(300_000),  # three segments
    "zero": b"",
}
DIRS = ("empty",)
# files: 5; directories: home, parent, parent/subdir, empty
FILES, DIRECTORIES = 5, 4


class WalkerGridTests(WalkerGridMixin, CLITestMixin, unittest.TestCase):
    """Runs of BackupWalker against NoNetworkGrid, checked by reading the grid back."""

    async def test_backup_reads_back_intact(self) -> None:
        """A first run uploads every file and directory; Latest holds the tree, byte for byte."""
        await self.make_alias()
        write_tree(self.source, TREE, DIRS)
        walker = self.walker()
        result = await walker.run()
        p = result.progress
        assert (p.files_uploaded, p.files_reused, p.files_skipped) == (FILES, 0, 0)
        assert (p.directories_created, p.directories_reused) == (DIRECTORIES, 0)
        assert p.bytes_uploaded == sum(len(v) for v in TREE.values())
        assert p.phase == "finished" and p.files_in_flight == 0
        assert p.estimated_files == FILES
        assert result.archive_name == "2027-01-15_08:00:00Z"
        target = await self.target_dir()
        latest = await target.get("Latest")
        assert latest.get_uri() == result.private_snapshot_cap
        assert await read_tree(latest) == local_tree(self.source)
        archives = await (await target.get("Archives")).list()
        assert list(archives) == [result.archive_name]
        # a file's cap is the one the node's own uploader gives for the same file
        _, meta = (await (await latest.get("parent")).list())["blah.txt"]
        assert meta["mtime"] == os.stat(os.path.join(self.source, "parent/blah.txt")).st_mtime
        ours = (await latest.get("big.bin")).get_uri()
        theirs = await self.client.upload(
            FileName(os.path.join(self.source, "big.bin"), self.client.convergence))
        assert ours == theirs.get_uri()

    async def test_second_run_reuses_everything(self) -> None:
        """An unchanged tree: every file and directory comes from the backupdb, nothing uploads."""
        await self.make_alias()
        write_tree(self.source, TREE, DIRS)
        first = await self.walker().run()
        self.clock.advance(3600)
        second = await self.walker().run()
        p = second.progress
        assert (p.files_uploaded, p.files_reused, p.bytes_uploaded) == (0, FILES, 0)
        assert (p.directories_created, p.directories_reused) == (0, DIRECTORIES)
        assert second.private_snapshot_cap == first.private_snapshot_cap
        archives = await (await (await self.target_dir()).get("Archives")).list()
        assert sorted(archives) == ["2027-01-15_08:00:00Z", "2027-01-15_09:00:00Z"]

    async def test_changed_file_is_uploaded_again(self) -> None:
        """A changed file is uploaded; directories above it are new, the others reused."""
        await self.make_alias()
        write_tree(self.source, TREE, DIRS)
        await self.walker().run()
        changed = os.path.join(self.source, "parent/subdir/foo.txt")
        with open(changed, "wb") as f:
            f.write(b"foo, changed")
        os.utime(changed, (1, 1))
        self.clock.advance(60)
        result = await self.walker().run()
        p = result.progress
        assert (p.files_uploaded, p.files_reused) == (1, FILES - 1)
        assert (p.directories_created, p.directories_reused) == (3, 1)  # subdir, parent, home
        latest = await (await self.target_dir()).get("Latest")
        assert (await read_tree(latest))["parent/subdir/foo.txt"] == b"foo, changed"

    async def test_tahoe_backup_backupdb_is_honoured_both_ways(self) -> None:
        """After the real `tahoe backup`, our run reuses all; after ours, `tahoe backup` does."""
        write_tree(self.source, TREE, DIRS)
        await self.do_cli("create-alias", "tahoe")
        rc, out, err = await self.do_cli("backup", self.source, "tahoe:backups")
        assert rc == 0, err
        assert "5 files uploaded (0 reused)" in out
        target = await self.target_dir()
        tahoe_latest = (await target.get("Latest")).get_uri()
        result = await self.walker().run()
        p = result.progress
        assert (p.files_uploaded, p.files_reused) == (0, FILES)
        assert (p.directories_created, p.directories_reused) == (0, DIRECTORIES)
        assert result.private_snapshot_cap == tahoe_latest
        # ours wrote caps the way tahoe backup does (bytes), and it reuses them
        with open(os.path.join(self.source, "new.txt"), "wb") as f:
            f.write(b"new file, uploaded by the walker" * 10)
        self.clock.advance(60)
        ours = await self.walker().run()
        assert ours.progress.files_uploaded == 1
        db = sqlite3.connect(os.path.join(self.nodedir, "private", "backupdb.sqlite"))
        assert {row[0] for row in db.execute("SELECT typeof(filecap) FROM caps")} == {"blob"}
        db.close()
        rc, out, err = await self.do_cli("backup", self.source, "tahoe:backups")
        assert rc == 0, err
        assert "0 files uploaded (6 reused)" in out
        assert "0 directories created (4 reused)" in out

    async def test_directories_are_the_ones_tahoe_backup_makes(self) -> None:
        """With no backupdb to reuse, `tahoe backup` builds the very snapshot cap we built:
        same children, metadata, packing and convergence."""
        write_tree(self.source, TREE, DIRS)
        await self.do_cli("create-alias", "tahoe")
        ours = await self.walker().run()
        os.unlink(os.path.join(self.nodedir, "private", "backupdb.sqlite"))
        rc, out, err = await self.do_cli("backup", self.source, "tahoe:backups")
        assert rc == 0, err
        assert "4 directories created (0 reused)" in out
        tahoe_latest = (await (await self.target_dir()).get("Latest")).get_uri()
        assert tahoe_latest == ours.private_snapshot_cap

    async def test_skip_reasons_are_counted(self) -> None:
        """Unreadable file and directory, symlink, FIFO, undecodable name: skipped and counted."""
        await self.make_alias()
        write_tree(self.source, {"ok.txt": b"ok", "secret.txt": b"s", "locked/x": b"x"})
        os.symlink("ok.txt", os.path.join(self.source, "link"))
        os.mkfifo(os.path.join(self.source, "fifo"))
        with open(os.path.join(os.fsencode(self.source), b"bad-\xff-name"), "wb") as f:
            f.write(b"undecodable")
        secret = os.path.join(self.source, "secret.txt")
        locked = os.path.join(self.source, "locked")
        os.chmod(secret, 0)
        os.chmod(locked, 0)
        self.addCleanup(os.chmod, locked, 0o755)
        seams = {}
        if os.geteuid() == 0:  # root reads anything: make the same two fail as for a user
            seams = self._deny_as_root({secret}, {locked})
        result = await self.walker(**seams).run()
        p = result.progress
        assert (p.skipped.unreadable, p.skipped.symlink, p.skipped.special,
                p.skipped.undecodable) == (2, 1, 1, 1)
        assert (p.files_skipped, p.directories_skipped) == (4, 1)
        assert p.files_uploaded == 1 and p.files_seen == 5
        assert result.skipped_any
        latest = await (await self.target_dir()).get("Latest")
        assert sorted(await latest.list()) == ["ok.txt"]

    def _deny_as_root(self, files: set[str], dirs: set[str]) -> dict[str, Any]:
        """The walker's open_file and list_directory seams, refusing ``files`` and ``dirs``."""

        denied_files = {os.path.basename(path) for path in files}
        denied_dirs = {os.stat(path).st_ino for path in dirs}

        def open_file(name: str, dir_fd: int, listed: os.stat_result) -> ByteSource:
            if name in denied_files:
                raise PermissionError(13, "Permission denied", name)
            return FileSource(name, dir_fd, listed)

        def deny_listing(fd: int) -> list[os.DirEntry[str]]:
            if os.fstat(fd).st_ino in denied_dirs:
                raise PermissionError(13, "Permission denied")
            return list_directory(fd)

        return {"open_file": open_file, "list_directory": deny_listing}

    async def test_exclude_patterns(self) -> None:
        """Names matching an exclude glob are left out, files and directories alike, and counted."""
        await self.make_alias()
        write_tree(self.source, {"keep.txt": b"k", "drop.tmp": b"t", "cache/x.txt": b"x",
                                 "sub/also.tmp": b"t", "sub/keep2": b"k"})
        result = await self.walker(exclude=["*.tmp", " cache ", ""]).run()
        assert result.progress.excluded == 3
        assert result.progress.files_uploaded == 2
        latest = await (await self.target_dir()).get("Latest")
        assert set(await read_tree(latest)) == {"keep.txt", "sub/", "sub/keep2"}

    async def test_target_path_is_created_and_checked(self) -> None:
        """Missing directories on alias:path are made; a file in the way is a TargetError."""
        await self.make_alias()
        write_tree(self.source, {"a": b"a"})
        await self.walker(target="tahoe:one/two/three").run()
        three = await self.target_dir("tahoe:one/two/three")
        assert sorted(await three.list()) == ["Archives", "Latest"]
        alias = await self.target_dir("tahoe:")
        await alias.add_file("afile", Data(b"a file in the way", None))
        with pytest.raises(TargetError, match="tahoe:afile/sub: afile is not a directory"):
            await self.walker(target="tahoe:afile/sub").run()
        with pytest.raises(TargetError, match="Latest is a read-only directory"):
            await self.walker(target="tahoe:one/two/three/Latest/x").run()

    async def test_missing_source_fails_before_touching_the_grid(self) -> None:
        """A source that is not a directory is a SourceError, and no target directory is made."""
        await self.make_alias()
        os.rmdir(self.source)
        walker = self.walker()
        with pytest.raises(SourceError, match="is not a directory"):
            await walker.run()
        assert walker.progress().phase == "failed"
        assert await (await self.target_dir("tahoe:")).list() == {}

    async def test_periodic_recheck_of_old_caps(self) -> None:
        """Caps last checked months ago are checked: healthy ones reused, lost ones re-uploaded."""
        await self.make_alias()
        write_tree(self.source, TREE, DIRS)
        await self.walker().run()
        self._age_backupdb(days=90)  # past ALWAYS_CHECK_AFTER: every entry is re-checked
        self.clock.advance(60)
        healthy = await self.walker().run()
        p = healthy.progress
        # literal files (<= 55 bytes) have nothing to check but count as checked
        assert (p.files_checked, p.files_reused, p.files_uploaded) == (FILES, FILES, 0)
        assert p.directories_checked == DIRECTORIES and p.directories_reused == DIRECTORIES
        self._age_backupdb(days=90)
        big_cap = (await (await (await self.target_dir()).get("Latest")).get("big.bin")).get_uri()
        for share in self.find_uri_shares(big_cap)[:8]:  # 2 of 10 left, k=3: unrecoverable
            self.delete_share(share)
        self.clock.advance(60)
        lost = await self.walker().run()
        p = lost.progress
        assert (p.files_checked, p.files_uploaded, p.files_reused) == (FILES, 1, FILES - 1)
        assert p.directories_reused == DIRECTORIES, "same caps, so the same directories"
        assert {shnum for shnum, _, _ in self.find_uri_shares(big_cap)} == set(range(10))
        latest = await (await self.target_dir()).get("Latest")
        assert await read_tree(latest) == local_tree(self.source)

    def _age_backupdb(self, days: int) -> None:
        db = sqlite3.connect(os.path.join(self.nodedir, "private", "backupdb.sqlite"))
        old = 1_000_000_000 - days * 86400  # any time long before time.time()
        db.execute("UPDATE last_upload SET last_checked=?", (old,))
        db.execute("UPDATE directories SET last_checked=?", (old,))
        db.commit()
        db.close()

    async def test_grid_failure_fails_the_run(self) -> None:
        """With too few servers an upload fails: the run fails with BackupFailed, phase 'failed'."""
        await self.make_alias()
        write_tree(self.source, {"big.bin": os.urandom(100_000)})
        for serverid in self.g.get_all_serverids()[:5]:
            self.g.remove_server(serverid)
        walker = self.walker()
        with pytest.raises(BackupFailed, match="UploadUnhappinessError"):
            await walker.run()
        p = walker.progress()
        assert p.phase == "failed" and p.files_failed == 1 and p.files_in_flight == 0

    async def test_hash_pass_runs_off_the_reactor_thread(self) -> None:
        """With the real reactor's default thread pool, the convergent-key hashing is not
        done on the reactor thread."""
        from twisted.internet import reactor

        await self.make_alias()
        write_tree(self.source, {"big.bin": os.urandom(3 * 1024 * 1024)})
        threads: set[int] = set()
        real_hasher = uploadable_module.convergence_hasher

        class Spy:
            def __init__(self, inner):
                self._inner = inner

            def update(self, data):
                threads.add(threading.get_ident())
                self._inner.update(data)

            def digest(self):
                return self._inner.digest()

        self.patch(uploadable_module, "convergence_hasher",
                   lambda *a: Spy(real_hasher(*a)))
        result = await self.walker(reactor=reactor).run()
        assert result.progress.files_uploaded == 1
        assert threads and threading.main_thread().ident not in threads


class RecordingGrid(NodeGridOperations):
    """The node's grid operations, recording what the walker asks of them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: list[str] = []

    async def upload(self, source: Any, lease: Any, **kw: Any) -> bytes:
        self.calls.append("upload")
        return await super().upload(source, lease, **kw)

    async def create_immutable_directory(self, packed: bytes, lease: Any, **kw: Any) -> bytes:
        self.calls.append("directory")
        return await super().create_immutable_directory(packed, lease, **kw)


class WalkerGridSeamTests(WalkerGridMixin, unittest.TestCase):
    """The walker's grid seam, on the real grid."""

    async def test_uploads_and_directories_go_through_the_injected_grid(self) -> None:
        """Every file and every directory of a first run goes through ``grid``, each once
        (a directory's packed bytes are one more upload)."""
        await self.make_alias()
        write_tree(self.source, TREE, DIRS)
        throttle = JobThrottle(self.clock)
        grid = RecordingGrid(self.client, throttle, run_in_real_pool)
        result = await self.walker(throttle=throttle, grid=grid).run()
        assert grid.calls.count("directory") == DIRECTORIES
        assert grid.calls.count("upload") == FILES + DIRECTORIES
        assert result.progress.files_uploaded == FILES
