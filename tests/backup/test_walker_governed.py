"""The walker under its job's throttle, on the in-process grid with the throttle on a task.Clock.

The grid runs on the real reactor (its eventual sends and the hashing thread
pool); the walker's timers and timestamps run on a ``Clock`` the test
advances in steps, letting the real reactor turn between steps. Bytes can only
be granted at the Clock's instants, so sampling before each step sees every
grant, and the cap is checked exactly, however the real reactor interleaves.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from tahoe_governor.backup import BackupCancelled, JobThrottle
from tahoe_governor.status import public_dict
from tahoe_governor.throttle import UNLIMITED

from .grid import START, WalkerGridMixin, local_tree, read_tree, spin, write_tree

pytestmark = pytest.mark.e2e

K, N = 3, 10  # the test grid's encoding


class Samples:
    """What a driven run looked like at each Clock step."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, int, int, int]] = []  # (t, wire granted, handed, in flight)

    def check_cap(self, throttle: JobThrottle, t0: float = START) -> None:
        """Wire bytes granted by each instant <= burst + rate * elapsed; handed bytes follow."""
        for t, granted, handed, _ in self.rows:
            assert granted <= throttle.burst + throttle.wire_rate * (t - t0), (t, granted)
            assert handed * N <= granted * K + N * 64, "handed to the encoder beyond its tokens"


class GovernedWalkerTests(WalkerGridMixin, unittest.TestCase):
    """Caps, suspension, abort, cancel, concurrency and the CPU seam, with the grid for real."""

    async def drive(self, walker: Any, run: Deferred, until: Any = None, step: float = 0.05,
                    samples: Samples | None = None, max_seconds: float = 600.0) -> None:
        """Run until ``run`` fires or ``until(progress)`` holds: the real reactor turns, and
        the Clock moves on by ``step`` whenever the job waits on it (so Clock time passes
        only while the job is held by its throttle). Fails after ``max_seconds`` of Clock time."""
        deadline = self.clock.seconds() + max_seconds
        while not (run.called or (until is not None and until(walker.progress()))):
            await spin(1)
            if samples is not None:
                p = walker.progress()
                samples.rows.append((self.clock.seconds(), walker.throttle.granted_wire_bytes,
                                     p.bytes_uploaded, p.files_in_flight))
            if self.clock.getDelayedCalls():
                self.clock.advance(step)
                if self.clock.seconds() > deadline:
                    raise AssertionError(f"not there after {max_seconds} s: {walker.progress()}")

    async def test_job_bucket_bounds_bytes_handed_to_the_encoder(self) -> None:
        """Capped: wire bytes (plaintext * N/k) never beat burst + rate*t, and the cap binds."""
        await self.make_alias()
        data = os.urandom(600_000)
        write_tree(self.source, {"big.bin": data})
        throttle = JobThrottle(self.clock, wire_rate=200_000)
        walker = self.walker(throttle=throttle)
        run = walker.run()
        samples = Samples()
        await self.drive(walker, run, samples=samples)
        result = await run
        samples.check_cap(throttle)
        wire = throttle.granted_wire_bytes
        assert wire >= len(data) * N // K
        elapsed = self.clock.seconds() - START
        assert elapsed >= (wire - throttle.burst) / throttle.wire_rate, "the cap did bind"
        assert result.progress.bytes_uploaded == len(data)
        latest = await (await self.target_dir()).get("Latest")
        assert await read_tree(latest) == {"big.bin": data}

    async def test_progress_rate_and_eta_while_capped(self) -> None:
        """Mid-run snapshots: a rate within the cap, an ETA, and the path only in private fields."""
        await self.make_alias()
        write_tree(self.source, {"a.bin": os.urandom(400_000), "b.bin": os.urandom(400_000)})
        throttle = JobThrottle(self.clock, wire_rate=100_000)
        walker = self.walker(throttle=throttle, concurrency=1)
        run = walker.run()
        await self.drive(walker, run, until=lambda p: p.elapsed_seconds >= 5)
        p = walker.progress()
        assert p.estimated_files == 2 and p.estimated_bytes == 800_000
        assert 0 < p.rate_bytes_per_second <= (throttle.burst + 100_000 * 5) * K / N / 5
        assert p.eta_seconds is not None and p.eta_seconds > 0
        assert p.files_in_flight == 1
        assert p.private_current_paths == (os.path.join(self.source, "a.bin"),)
        public = public_dict(p)
        assert "private_current_paths" not in public
        assert self.source not in repr(public)
        await self.drive(walker, run)
        await run

    async def test_suspension_stops_reads_and_resume_completes(self) -> None:
        """Suspended mid-file: not one more byte reaches the encoder; resume finishes the run."""
        await self.make_alias()
        data = os.urandom(500_000)
        write_tree(self.source, {"big.bin": data})
        throttle = JobThrottle(self.clock, wire_rate=150_000)
        walker = self.walker(throttle=throttle)
        run = walker.run()
        await self.drive(walker, run, until=lambda p: p.bytes_uploaded > 100_000)
        throttle.suspend()
        held_bytes, held_wire = walker.progress().bytes_uploaded, throttle.granted_wire_bytes
        for _ in range(200):  # 10 s of Clock time, and plenty of reactor turns
            await spin(3)
            self.clock.advance(0.05)
        assert walker.progress().bytes_uploaded == held_bytes
        assert throttle.granted_wire_bytes == held_wire
        assert walker.progress().suspended and not run.called
        throttle.resume()
        await self.drive(walker, run)
        result = await run
        assert result.progress.bytes_uploaded == len(data)
        assert await read_tree(await (await self.target_dir()).get("Latest")) == {"big.bin": data}

    async def test_abort_in_flight_restarts_the_file_on_resume(self) -> None:
        """Aborting a suspended upload drops it (servers discard the partial shares); on resume it
        starts over and completes."""
        await self.make_alias()
        data = os.urandom(500_000)
        write_tree(self.source, {"big.bin": data})
        throttle = JobThrottle(self.clock, wire_rate=150_000)
        walker = self.walker(throttle=throttle)
        run = walker.run()
        await self.drive(walker, run, until=lambda p: p.bytes_uploaded > 100_000)
        throttle.suspend()
        assert throttle.abort_in_flight() == 1
        await spin(20)
        assert self._incoming_shares() == 0, "the aborted upload left partial shares"
        throttle.resume()
        await self.drive(walker, run)
        result = await run
        assert result.progress.files_restarted == 1
        assert result.progress.files_uploaded == 1
        assert await read_tree(await (await self.target_dir()).get("Latest")) == {"big.bin": data}

    def _incoming_shares(self) -> int:
        count = 0
        for _, ss, _ in self.iterate_servers():
            for _dirpath, _dirs, files in os.walk(ss.incomingdir):
                count += len(files)
        return count

    async def test_cancel_then_rerun_continues_from_the_backupdb(self) -> None:
        """Cancelled mid-tree (while suspended), the run fails with BackupCancelled; the next run
        reuses every file finished before and uploads the rest."""
        await self.make_alias()
        files = {f"f{i}.bin": os.urandom(60_000) for i in range(6)}
        write_tree(self.source, files)
        throttle = JobThrottle(self.clock, wire_rate=300_000)
        walker = self.walker(throttle=throttle, concurrency=1)
        run = walker.run()
        await self.drive(walker, run, until=lambda p: p.files_uploaded >= 2)
        throttle.suspend()
        walker.cancel()
        await spin(20)
        with pytest.raises(BackupCancelled):
            await run
        first = walker.progress()
        assert first.phase == "cancelled" and first.files_in_flight == 0
        assert 2 <= first.files_uploaded < 6
        assert list(await (await (await self.target_dir()).get("Archives")).list()) == []
        throttle.resume()
        throttle.set_wire_rate(UNLIMITED)  # so the rerun needs no Clock steps
        self.clock.advance(60)
        result = await self.walker(throttle=throttle).run()
        p = result.progress
        assert p.files_reused == first.files_uploaded
        assert p.files_uploaded == 6 - first.files_uploaded
        assert await read_tree(await (await self.target_dir()).get("Latest")) == \
            local_tree(self.source)

    async def test_concurrency_keeps_the_cap(self) -> None:
        """Several files in flight at once share the one job bucket: the cap still holds."""
        await self.make_alias()
        files = {f"d{i % 3}/f{i}.bin": os.urandom(20_000) for i in range(12)}
        write_tree(self.source, files)
        throttle = JobThrottle(self.clock, wire_rate=100_000)
        walker = self.walker(throttle=throttle, concurrency=4)
        run = walker.run()
        samples = Samples()
        await self.drive(walker, run, samples=samples)
        result = await run
        samples.check_cap(throttle)
        assert max(row[3] for row in samples.rows) >= 2, "never more than one file in flight"
        assert max(row[3] for row in samples.rows) <= 4
        assert result.progress.files_uploaded == 12
        assert await read_tree(await (await self.target_dir()).get("Latest")) == \
            local_tree(self.source)

    async def test_cpu_gate_seam_holds_and_releases_work(self) -> None:
        """The CPU seam: while the gate holds, no byte is handed; opening it lets the run finish."""
        await self.make_alias()
        write_tree(self.source, {"a.bin": os.urandom(200_000)})
        held: list[Deferred] = []
        calls = []

        def gate() -> Deferred:
            calls.append(1)
            d: Deferred = Deferred()
            held.append(d)
            return d

        throttle = JobThrottle(self.clock, cpu_gate=gate)
        walker = self.walker(throttle=throttle)
        run = walker.run()
        # the walk reaches the gate after trips to the thread pool: wait for them (real time)
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:
            await spin(3)
            self.clock.advance(0.05)
        for _ in range(50):
            await spin(3)
            self.clock.advance(0.05)
        assert walker.progress().bytes_uploaded == 0 and not run.called
        assert held, "the work loop never consulted the gate"
        throttle.set_cpu_gate(None)
        while held:
            held.pop().callback(None)
        await self.drive(walker, run)
        result = await run
        assert result.progress.files_uploaded == 1 and len(calls) >= 1
