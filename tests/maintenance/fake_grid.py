"""An in-memory grid for maintenance walkers: directories, files, share counts, and a log
of every check, verify and repair asked of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from tahoe_governor.maintenance.grid import GridUnavailable, UnreadableDirectory
from tahoe_governor.maintenance.records import Finding, GridEntry


@attrs.define
class FakeObject:
    """One object: a directory's children by name, or a file's size; shares left of N."""

    kind: str
    children: dict[str, str] = attrs.Factory(dict)
    size: int = 0
    shares: int = 10
    needed: int = 3
    total: int = 10


class FakeGrid:
    """A grid of :class:`FakeObject` by storage index; ``"root"`` is the target.

    ``checks``, ``verifies`` and ``repairs`` count the calls per storage index;
    ``on_check`` (if set) is called with the key before each check answers.
    """

    def __init__(self, objects: dict[str, FakeObject]) -> None:
        self.objects = objects
        self.checks: Counter[str] = Counter()
        self.verifies: Counter[str] = Counter()
        self.repairs: Counter[str] = Counter()
        self.leases: Counter[str] = Counter()
        self.on_check: Callable[[str], None] | None = None
        self.available = True
        self.check_seconds: tuple[IReactorTime, float] | None = None
        """When set, (clock, seconds): each check takes that long on that clock."""
        self.held: list[Deferred[None]] | None = None
        """When a list: each check waits on a Deferred appended here until the test fires it."""

    def entry(self, key: str, path: str) -> GridEntry:
        obj = self.objects[key]
        return GridEntry(key=key, cap=f"cap-{key}", path=path, kind=obj.kind,
                         size=obj.size if obj.kind == "file" else None,
                         expansion=obj.total / obj.needed)

    async def open_target(self) -> GridEntry:
        return self.entry("root", "")

    async def list_directory(self, cap: str, path: str) -> list[GridEntry]:
        obj = self.objects[cap.removeprefix("cap-")]
        if obj.shares < obj.needed:
            raise UnreadableDirectory("not enough shares")
        return [self.entry(key, f"{path}/{name}" if path else name)
                for name, key in sorted(obj.children.items())]

    def _finding(self, key: str, verify: bool) -> Finding:
        obj = self.objects[key]
        result = ("healthy" if obj.shares >= obj.total else
                  "unhealthy" if obj.shares >= obj.needed else "unrecoverable")
        return Finding(result, obj.shares, obj.needed, obj.total, verified=verify)

    async def check(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        if not self.available:
            raise GridUnavailable("no storage server answered the check")
        self.checks[entry.key] += 1
        self.verifies[entry.key] += verify
        self.leases[entry.key] += add_lease
        if self.on_check is not None:
            self.on_check(entry.key)
        if self.check_seconds is not None:
            clock, seconds = self.check_seconds
            await deferLater(clock, seconds, lambda: None)
        if self.held is not None:
            answer: Deferred[None] = Deferred()
            self.held.append(answer)
            await answer
        return self._finding(entry.key, verify)

    async def repair(self, entry: GridEntry, *, verify: bool, add_lease: bool) -> Finding:
        self.repairs[entry.key] += 1
        obj = self.objects[entry.key]
        before = obj.shares
        obj.shares = obj.total
        return Finding("repaired", obj.shares, obj.needed, obj.total, verified=verify,
                       detail=f"{before} of {obj.total} shares before")


def archive_tree() -> FakeGrid:
    """Two snapshots sharing one unchanged directory and one file (as ``tahoe backup``
    makes them), one damaged file and one lost one.

    Objects: root, Archives/a, Archives/b, shared dir ``pics`` (in both), files
    f1 (in pics), f2 (in a and b: one storage index), f3 (damaged), f4 (lost).
    """
    return FakeGrid({
        "root": FakeObject("directory", {"a": "snap-a", "b": "snap-b"}),
        "snap-a": FakeObject("directory", {"pics": "pics", "same.txt": "f2",
                                           "old.txt": "f3"}),
        "snap-b": FakeObject("directory", {"pics": "pics", "same.txt": "f2",
                                           "gone.txt": "f4"}),
        "pics": FakeObject("directory", {"one.jpg": "f1"}),
        "f1": FakeObject("file", size=3000),
        "f2": FakeObject("file", size=600),
        "f3": FakeObject("file", size=900, shares=7),
        "f4": FakeObject("file", size=300, shares=2),
    })
