"""The sample tree: deterministic from its seed, the asked size exactly, a mix, and edits."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.demo.sample_tree import (
    LITERAL_MAX_BYTES,
    generate_sample_tree,
    modify_files,
    plan_sample_tree,
)


def digest(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` -> the SHA-256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@given(
    seed=st.integers(0, 2**32),
    files=st.integers(1, 400),
    extra=st.integers(0, 50_000_000),
)
@settings(max_examples=60, deadline=None)
def test_plan_totals_and_counts(seed: int, files: int, extra: int) -> None:
    """Any seed, count and total at or above the minimum: exactly that many distinct files
    summing to exactly that total, each tiny or larger than a literal cap."""
    total = files * (LITERAL_MAX_BYTES + 1) + extra
    plan = plan_sample_tree(seed, files, total)
    assert len(plan) == files
    assert len({f.path for f in plan}) == files
    assert sum(f.size for f in plan) == total
    assert all(f.size > 0 for f in plan)
    assert list(plan) == sorted(plan, key=lambda f: f.path)


def test_default_plan_is_a_mix() -> None:
    """The default tree: a few hundred files, tens of MB, tiny to large, nested 2 to 4 deep."""
    plan = plan_sample_tree()
    sizes = [f.size for f in plan]
    assert 200 <= len(plan) <= 500 and 10_000_000 <= sum(sizes) <= 99_000_000
    assert any(s <= LITERAL_MAX_BYTES for s in sizes)  # literal caps
    assert any(1_000 <= s < 16_000 for s in sizes)
    assert any(s >= 500_000 for s in sizes)
    depths = {f.path.count("/") for f in plan}
    assert min(depths) >= 1 and max(depths) >= 3
    assert len({f.path.rsplit("/", 1)[0] for f in plan}) >= 10


def test_same_seed_same_bytes_other_seed_other_tree(tmp_path: Path) -> None:
    """Two trees from one seed are identical to the byte; another seed differs; no two files
    of a tree share content (Tahoe would store a duplicate once)."""
    a = generate_sample_tree(tmp_path / "a", seed=5, files=40, total_bytes=400_000)
    b = generate_sample_tree(tmp_path / "b", seed=5, files=40, total_bytes=400_000)
    c = generate_sample_tree(tmp_path / "c", seed=6, files=40, total_bytes=400_000)
    assert digest(a.root) == digest(b.root)
    assert digest(a.root) != digest(c.root)
    assert len(set(digest(a.root).values())) == 40
    assert {p: (a.root / p).stat().st_size for p in digest(a.root)} == {
        f.path: f.size for f in a.files
    }
    assert a.total_bytes == 400_000


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_one_symlink_to_show_a_skip(tmp_path: Path) -> None:
    """The tree holds one symbolic link (backups skip links), to a file of the tree."""
    tree = generate_sample_tree(tmp_path / "t", files=10, total_bytes=100_000)
    (link,) = tree.symlinks
    assert (tree.root / link).is_symlink() and (tree.root / link).resolve().is_file()


def test_modify_changes_size_content_and_mtime(tmp_path: Path) -> None:
    """Modified files get new content, a new size and a later mtime; the others are untouched;
    the choice follows the seed and never picks a tiny file."""
    tree = generate_sample_tree(tmp_path / "t", seed=3, files=50, total_bytes=500_000)
    before = digest(tree.root)
    mtimes = {p: (tree.root / p).stat().st_mtime_ns for p in before}
    new_tree, changed = modify_files(tree, 5, seed=3)
    after = digest(tree.root)
    assert len(changed) == 5
    assert {p for p in before if before[p] != after[p]} == set(changed)
    sizes = {f.path: f.size for f in tree.files}
    new_sizes = {f.path: f.size for f in new_tree.files}
    for path in changed:
        assert sizes[path] > LITERAL_MAX_BYTES
        assert (
            new_sizes[path]
            > sizes[path]
            == (tree.root / path).stat().st_size - (new_sizes[path] - sizes[path])
        )
        assert (tree.root / path).stat().st_mtime_ns > mtimes[path]
    assert all(new_sizes[p] == sizes[p] for p in sizes if p not in changed)
    other = generate_sample_tree(tmp_path / "u", seed=3, files=50, total_bytes=500_000)
    assert modify_files(other, 5, seed=3)[1] == changed


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    """Too few bytes, no files, or more edits than files: errors that say what was expected."""
    with pytest.raises(ValueError, match="at least 560 bytes"):
        plan_sample_tree(files=10, total_bytes=559)
    with pytest.raises(ValueError, match="at least 1 file"):
        plan_sample_tree(files=0)
    tree = generate_sample_tree(tmp_path / "t", files=3, total_bytes=3_000)
    with pytest.raises(ValueError, match="cannot modify 9 files: expected 0 to"):
        modify_files(tree, 9)
