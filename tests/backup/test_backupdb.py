"""The backupdb: Tahoe's file and module, and the per-directory read that agrees with check_file."""

from __future__ import annotations

import os
import time

import pytest

from tahoe_governor.backup import BackupDBError, backupdb_path, open_backupdb
from tahoe_governor.backup.backupdb import certain_reuse, check_file_stat, recorded_children

DAY = 86400


def record(db, path: str, cap: bytes, age_days: float = 0.0) -> None:
    """Record ``path`` as uploaded (as tahoe backup does) and age its last check."""
    db.check_file(path).did_upload(cap)
    fileid = db.connection.execute(
        "SELECT fileid FROM local_files WHERE path=?", (path,)).fetchone()[0]
    db.connection.execute("UPDATE last_upload SET last_checked=? WHERE fileid=?",
                          (time.time() - age_days * DAY, fileid))
    db.connection.commit()


def test_opens_tahoes_file_in_the_nodedir(tmp_path):
    """The backupdb is NODEDIR/private/backupdb.sqlite, created by Tahoe's module."""
    (tmp_path / "private").mkdir()
    path = backupdb_path(str(tmp_path))
    assert path == str(tmp_path / "private" / "backupdb.sqlite")
    db = open_backupdb(path)
    assert db.VERSION == 2 and os.path.exists(path)


def test_a_broken_backupdb_is_a_clear_error(tmp_path):
    """A file that is not a backupdb gives BackupDBError with Tahoe's reason."""
    bad = tmp_path / "backupdb.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupDBError, match="cannot open backupdb"):
        open_backupdb(str(bad))
    with pytest.raises(BackupDBError, match="directory does not exist"):
        open_backupdb(str(tmp_path / "missing" / "backupdb.sqlite"))


@pytest.mark.parametrize(
    ("case", "certain"),
    [
        ("unchanged, checked a day ago", True),
        ("unchanged, checked 29 days ago", True),
        ("unchanged, checked 45 days ago (random re-check)", False),
        ("unchanged, checked 90 days ago (certain re-check)", False),
        ("size changed", False),
        ("mtime changed", False),
        ("never uploaded", False),
    ],
)
def test_certain_reuse_agrees_with_check_file(tmp_path, case, certain):
    """Where the directory read answers, check_file gives the same cap and no re-check;
    everywhere else it leaves the decision to check_file."""
    db = open_backupdb(str(tmp_path / "db.sqlite"))
    src = tmp_path / "src"
    src.mkdir()
    path = str(src / "f")
    with open(path, "wb") as f:
        f.write(b"contents")
    cap = b"URI:CHK:aaaa:bbbb:3:10:8"
    age = {"a day": 1, "29 days": 29, "45 days": 45, "90 days": 90}
    if case != "never uploaded":
        record(db, path, cap, next((d for k, d in age.items() if k in case), 0))
    if case == "size changed":
        with open(path, "ab") as f:
            f.write(b"more")
    if case == "mtime changed":
        os.utime(path, (1, 1))
    answer = certain_reuse(recorded_children(db, str(src)).get("f"), os.stat(path), time.time())
    if certain:
        assert answer == cap
        for _ in range(20):
            result = db.check_file(path)
            assert result.was_uploaded() == cap and not result.should_check()
    else:
        assert answer is None


def test_recorded_children_are_direct_children_only(tmp_path):
    """Records under subdirectories, or of sibling directories sharing a prefix, stay out."""
    db = open_backupdb(str(tmp_path / "db.sqlite"))
    for rel in ("d/a", "d/sub/b", "d2/c", "dd"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
        record(db, str(path), b"URI:LIT:" + rel.encode().replace(b"/", b""))
    assert set(recorded_children(db, str(tmp_path / "d"))) == {"a"}
    assert set(recorded_children(db, str(tmp_path))) == {"dd"}


@pytest.mark.parametrize("case", ["new", "unchanged", "changed", "ignore_timestamps", "old"])
def test_check_file_stat_answers_as_tahoes_check_file(tmp_path, case: str):
    """check_file_stat, given the file's stat, decides as Tahoe's check_file (which stats the
    path itself): same cap, same re-check, same record afterwards."""
    (tmp_path / "private").mkdir()
    db = open_backupdb(backupdb_path(str(tmp_path)))
    path = str(tmp_path / "f")
    with open(path, "wb") as f:
        f.write(b"content")
    if case != "new":
        record(db, path, b"URI:LIT:abc", age_days=90 if case == "old" else 0)
    if case == "changed":
        os.utime(path, (1, 1))
    use_timestamps = case != "ignore_timestamps"
    ours = check_file_stat(db, path, os.lstat(path), use_timestamps)
    ours_rows = db.connection.execute("SELECT count(*) FROM local_files").fetchone()
    theirs = db.check_file(path, use_timestamps)
    theirs_rows = db.connection.execute("SELECT count(*) FROM local_files").fetchone()
    assert ours.was_uploaded() == theirs.was_uploaded()
    assert ours.should_check() == theirs.should_check()
    assert (ours.mtime, ours.ctime, ours.size) == (theirs.mtime, theirs.ctime, theirs.size)
    assert ours_rows == theirs_rows
    db.connection.close()
