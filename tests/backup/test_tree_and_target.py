"""Local rules (exclude, metadata, kinds, estimate) and target resolution, against Tahoe's."""

from __future__ import annotations

import os

import pytest
from allmydata.scripts.cli import BackupOptions
from allmydata.scripts.tahoe_backup import get_local_metadata
from hypothesis import given
from hypothesis import strategies as st

from tahoe_governor.backup import (
    ExcludePatterns,
    TargetError,
    TreeEstimate,
    archive_name,
    estimate_tree,
    resolve_target,
)
from tahoe_governor.backup.tree import EntryKind, classify, list_directory, local_metadata

DIRCAP = b"URI:DIR2:aaaaaaaaaaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbba"
FILECAP = b"URI:LIT:nbswy3dp"

names = st.text(alphabet=st.sampled_from("ab.*?[]!-_ cT"), min_size=1, max_size=8)


@given(patterns=st.lists(st.text(alphabet=st.sampled_from("ab.*?[]! -"), max_size=6),
                         max_size=4),
       candidates=st.lists(names, max_size=10))
def test_exclude_matches_tahoe_backup_filter(patterns, candidates):
    """ExcludePatterns keeps exactly the names `tahoe backup --exclude` keeps."""
    options = BackupOptions()
    for pattern in patterns:
        options.opt_exclude(pattern)
    theirs = list(options.filter_listdir(candidates))
    ours = ExcludePatterns(patterns)
    assert [name for name in candidates if not ours.excludes(name)] == theirs


def test_exclude_rejects_a_bare_string():
    """A single string is a likely mistake (it would be split into characters): refused."""
    with pytest.raises(TypeError, match="sequence of strings"):
        ExcludePatterns("*.tmp")


def test_metadata_is_tahoe_backups(tmp_path):
    """local_metadata(stat) equals get_local_metadata(path) for files and directories."""
    f = tmp_path / "f"
    f.write_bytes(b"x")
    for path in (str(f), str(tmp_path)):
        assert local_metadata(os.stat(path)) == get_local_metadata(path)


def test_entry_kinds(tmp_path):
    """Symlinks (even to directories) are symlinks; FIFOs are special; then dirs and files."""
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_bytes(b"")
    os.symlink("d", tmp_path / "link-to-dir")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        kinds = {e.name: classify(e) for e in list_directory(fd)}
    finally:
        os.close(fd)
    assert kinds == {"d": EntryKind.DIRECTORY, "f": EntryKind.FILE,
                     "link-to-dir": EntryKind.SYMLINK, "fifo": EntryKind.SPECIAL}


def test_estimate_counts_regular_files_not_excluded(tmp_path):
    """The cheap walk counts regular files and bytes, skipping excluded names and symlinks."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one").write_bytes(b"1" * 100)
    (tmp_path / "two.tmp").write_bytes(b"2" * 50)
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "x").write_bytes(b"x" * 1000)
    (tmp_path / "three").write_bytes(b"3" * 7)
    os.symlink("three", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    estimate = estimate_tree(str(tmp_path), ExcludePatterns(["*.tmp", "skip"]))
    assert estimate == TreeEstimate(files=2, bytes=107)


ALIASES = {"tahoe": DIRCAP, "backup": DIRCAP, "file": FILECAP}


@pytest.mark.parametrize(
    ("target", "path", "label"),
    [
        ("backup:pictures", ("pictures",), "backup:pictures"),
        ("backup:a/b//c/", ("a", "b", "c"), "backup:a/b//c/"),
        ("backup:", (), "backup:"),
        ("pictures", ("pictures",), "pictures"),  # the default 'tahoe' alias, as tahoe backup
        (DIRCAP.decode() + "/x/y", ("x", "y"), "<dircap>/x/y"),
        (DIRCAP.decode(), (), "<dircap>"),
    ],
)
def test_resolve_target(target, path, label):
    """alias:path, a bare path and a dircap resolve as `tahoe backup` reads its TO argument."""
    resolved = resolve_target(target, ALIASES)
    assert resolved.private_rootcap == DIRCAP
    assert resolved.path == path
    assert resolved.label == label
    assert DIRCAP.decode() not in repr(resolved), "the cap stays out of repr"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuch:x", "Unknown alias"),
        ("file:x", "alias 'file' does not name a directory"),
        ("backup:a/../b", "may not contain"),
        ("", "must be 'alias:path'"),
    ],
)
def test_resolve_target_errors(target, message):
    """Bad targets fail with a TargetError saying what is wrong, never showing a cap."""
    with pytest.raises(TargetError, match=message) as info:
        resolve_target(target, ALIASES)
    assert "URI:" not in str(info.value)


def test_archive_name_is_tahoe_backups():
    """Archive entries are named like tahoe backup's: UTC, underscore, Z."""
    assert archive_name(1_800_000_000.7) == "2027-01-15_08:00:00Z"
