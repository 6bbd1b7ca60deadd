"""A sample tree to back up: a photo archive's shape, deterministic from a seed.

:func:`plan_sample_tree` decides every file's path and size (pure);
:func:`write_sample_tree` writes them with pseudo-random content, so no two
files share content (Tahoe's convergent encoding would store duplicates
once). The same seed gives the same names, sizes and bytes. Sizes mix tiny
notes (stored inline in their caps by Tahoe, as ``URI:LIT``), small documents,
photos and a few large videos, scaled so the tree totals ``total_bytes``
exactly. One symbolic link is added where the system supports it: backups
skip links, so the demo shows a skip too.

:func:`modify_files` changes a few files (new content, new size, newer
mtime) for an incremental run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import attrs

DEFAULT_SEED = 1018
DEFAULT_FILES = 300
DEFAULT_TOTAL_BYTES = 20_000_000

#: Files at most this long are stored inside their cap by Tahoe (``URI:LIT``): no upload.
LITERAL_MAX_BYTES = 55

#: (share of the files, smallest, largest size in bytes, extensions): drawn log-uniformly.
_SIZE_CLASSES = (
    (0.05, 8, LITERAL_MAX_BYTES, (".txt",)),
    (0.45, 1_000, 16_000, (".txt", ".md", ".json")),
    (0.38, 16_000, 300_000, (".jpg",)),
    (0.12, 300_000, 4_000_000, (".jpg", ".mov")),
)

_EVENTS = ("beach", "birthday", "hike", "garden", "visit", "snow", "concert", "trip")


@attrs.frozen
class SampleFile:
    """One regular file of the tree: its path relative to the root (``/``-separated), its size."""

    path: str
    size: int


@attrs.frozen
class SampleTree:
    """A tree written under ``root``: its regular files and symbolic links (relative paths)."""

    root: Path
    files: tuple[SampleFile, ...]
    symlinks: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Bytes in all regular files."""
        return sum(f.size for f in self.files)


def plan_sample_tree(
    seed: int = DEFAULT_SEED,
    files: int = DEFAULT_FILES,
    total_bytes: int = DEFAULT_TOTAL_BYTES,
) -> tuple[SampleFile, ...]:
    """The paths and sizes of a tree of ``files`` files totalling ``total_bytes`` bytes.

    Paths are nested as an archive is (``2021/2021-07-hike/IMG_0042.jpg``,
    ``documents/taxes/2022/...``), sorted; tiny files stay tiny and the rest
    are scaled to reach the total exactly.
    """
    if not isinstance(files, int) or files < 1:
        raise ValueError(f"the sample tree needs at least 1 file, got files={files!r}")
    minimum = files * (LITERAL_MAX_BYTES + 1)
    if not isinstance(total_bytes, int) or total_bytes < minimum:
        raise ValueError(
            f"total_bytes={total_bytes!r} is too small for {files} files: "
            f"expected at least {minimum} bytes ({LITERAL_MAX_BYTES + 1} per file)"
        )
    rng = random.Random(seed)
    directories = _plan_directories(rng)
    photo_directories = [d for d in directories if d.startswith("photos/")]
    raw: list[tuple[float, bool, str]] = []  # (size, tiny, extension)
    for _ in range(files):
        share, low, high, extensions = rng.choices(
            _SIZE_CLASSES, weights=[c[0] for c in _SIZE_CLASSES]
        )[0]
        size = low * (high / low) ** rng.random()
        raw.append((size, high == LITERAL_MAX_BYTES, rng.choice(extensions)))
    if all(tiny for _, tiny, _ in raw):
        raw[0] = (float(minimum), False, ".txt")  # someone must carry the bytes
    # Tiny files keep their size; the others get the floor of a non-literal
    # file plus a share of the rest in proportion to their drawn size.
    tiny_total = sum(int(size) for size, tiny, _ in raw if tiny)
    floor = LITERAL_MAX_BYTES + 1
    others = [size for size, tiny, _ in raw if not tiny]
    spare = total_bytes - tiny_total - floor * len(others)
    scale = spare / sum(others)
    sizes = [int(size) if tiny else floor + int(size * scale) for size, tiny, _ in raw]
    # Rounding leaves a remainder of a few bytes: the largest file takes it.
    largest = max(range(files), key=lambda i: sizes[i])
    sizes[largest] += total_bytes - sum(sizes)
    counters: dict[str, int] = {}
    planned = []
    for (_, _tiny, extension), size in zip(raw, sizes, strict=True):
        is_media = extension in (".jpg", ".mov")
        directory = rng.choice(photo_directories if is_media else directories)
        number = counters[directory] = counters.get(directory, 0) + 1
        stem = "IMG" if is_media else "note"
        planned.append(SampleFile(f"{directory}/{stem}_{number:04d}{extension}", size))
    return tuple(sorted(planned, key=lambda f: f.path))


def write_sample_tree(
    root: Path, plan: tuple[SampleFile, ...], seed: int = DEFAULT_SEED
) -> SampleTree:
    """Write ``plan`` under ``root`` (created; must not exist yet), plus one symbolic link."""
    root.mkdir(parents=True)
    for sample in plan:
        path = root / sample.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_content(seed, sample.path, 0, sample.size))
    symlinks: tuple[str, ...] = ()
    if plan and hasattr(os, "symlink"):
        link = root / "latest-photo"
        try:
            link.symlink_to(plan[-1].path)
            symlinks = ("latest-photo",)
        except OSError:  # not permitted here (some Windows setups): no link then
            pass
    return SampleTree(root, plan, symlinks)


def generate_sample_tree(
    root: Path,
    seed: int = DEFAULT_SEED,
    files: int = DEFAULT_FILES,
    total_bytes: int = DEFAULT_TOTAL_BYTES,
) -> SampleTree:
    """Plan and write a sample tree under ``root`` (see :func:`plan_sample_tree`)."""
    return write_sample_tree(root, plan_sample_tree(seed, files, total_bytes), seed)


def modify_files(
    tree: SampleTree, count: int, seed: int = DEFAULT_SEED
) -> tuple[SampleTree, tuple[str, ...]]:
    """Change ``count`` files of ``tree`` as an edit would; the updated tree and the changed paths.

    Each chosen file (never a tiny one, chosen from the seed) gets new content
    a little longer than before and an mtime later than any it had, so a
    backup sees it changed by size and by time.
    """
    candidates = [f for f in tree.files if f.size > LITERAL_MAX_BYTES]
    if not 0 <= count <= len(candidates):
        raise ValueError(
            f"cannot modify {count} files: expected 0 to {len(candidates)} "
            "(the tree's files larger than a literal cap)"
        )
    chosen = sorted(random.Random(f"{seed}:modify").sample(range(len(candidates)), count))
    changed = {candidates[i].path for i in chosen}
    files = []
    for sample in tree.files:
        if sample.path in changed:
            grown = SampleFile(sample.path, sample.size + 1024 + len(sample.path))
            path = tree.root / sample.path
            before = path.stat()
            path.write_bytes(_content(seed, sample.path, 1, grown.size))
            later = max(before.st_mtime_ns, path.stat().st_mtime_ns) + 2_000_000_000
            os.utime(path, ns=(later, later))
            files.append(grown)
        else:
            files.append(sample)
    return attrs.evolve(tree, files=tuple(files)), tuple(sorted(changed))


def _plan_directories(rng: random.Random) -> list[str]:
    directories = []
    for year in range(2019, 2025):
        months = sorted(rng.sample(range(1, 13), rng.randint(2, 4)))
        for month in months:
            directories.append(f"photos/{year}/{year}-{month:02d}-{rng.choice(_EVENTS)}")
    for topic in ("taxes", "house", "health"):
        for year in rng.sample(range(2019, 2025), 2):
            directories.append(f"documents/{topic}/{year}")
    directories.append("documents")
    return directories


def _content(seed: int, path: str, version: int, size: int) -> bytes:
    """The bytes of ``path`` (its ``version``-th content): unique per file, same for a seed."""
    return random.Random(f"{seed}:{version}:{path}").randbytes(size)
