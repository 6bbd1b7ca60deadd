"""A test double of ``tahoe_governor.node.governor``'s governor: backups simulated in time.

:class:`SimulatedGovernor` offers what the demo calls (``controls`` with
``status``, ``run_now``, ``pause``, ``resume``; ``stop``, ``web_url``, ``private_url``)
and behaves like a governed node running the one job of its ``tahoe.cfg``:
the job runs at once (it never ran) unless the state database holds it
paused, then at ``resume``; a run walks its source directory, uploads the
files its own small "backupdb" (path -> size, mtime) does not know and
reuses the others, and sends each peer one share of ``size / 2`` per
uploaded file. A capped peer receives at ``pace`` times its cap (from
``peer.<nickname>.up`` in ``[bandwidth]``); the others keep step, as Tahoe's
uploader waits for the slowest server. All time is the reactor's, so a
``task.Clock`` drives it in unit tests and the real reactor in a subprocess.

``faults`` makes it misbehave for the cleanup tests: ``"status"`` (the
``status_calls``-th status call raises), ``"job"`` (the run fails), ``"hang"``
(the run never ends).
"""

from __future__ import annotations

import configparser
import math
import os
from pathlib import Path
from typing import Any

from tahoe_governor.policy.state_db import StateDatabase, state_db_path
from tahoe_governor.policy.units import parse_absolute_rate
from tests.demo.status_builders import UNLIMITED, Job, Peer, Progress, Status

SHARE_NEEDED = 2
LITERAL_MAX_BYTES = 55
#: Bytes/s of the uncapped peers' links when no peer is capped.
UNCAPPED_SPEED = 5_000_000.0


class SimulatedGovernor:
    """See the module documentation."""

    def __init__(
        self,
        reactor: Any,
        nodedir: str,
        pace: float = 0.98,
        fault: str | None = None,
        fault_after_status_calls: int = 3,
        uncapped_peers: tuple[str, ...] = ("home-nas", "friends-office"),
    ) -> None:
        self._reactor = reactor
        self._pace = pace
        self._fault = fault
        self._fault_after = fault_after_status_calls
        self.status_calls = 0
        self.calls: list[str] = []
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(Path(nodedir) / "tahoe.cfg", encoding="utf-8")
        (source_key,) = [k for k in parser["backups"] if k.endswith(".source")]
        self.job_name = source_key.split(".", 1)[0]
        self._source = Path(parser["backups"][source_key])
        caps = {
            key.split(".")[1]: parse_absolute_rate(value).bytes_per_second
            for key, value in parser["bandwidth"].items()
            if key.startswith("peer.") and key.endswith(".up")
        }
        self._peers = [(f"tub-{name}", name, float(cap)) for name, cap in caps.items()] + [
            (f"tub-{name}", name, UNLIMITED) for name in uncapped_peers
        ]
        self._sent = {tubid: 0 for tubid, _, _ in self._peers}
        self._known: dict[str, tuple[int, int]] = {}
        self._last_success: float | None = None
        self._run: dict[str, Any] | None = None
        self.web_url = "http://127.0.0.1:1/"
        self.private_url = "http://127.0.0.1:1/governor/TOKEN/"
        self.controls = self  # the real governor hands these to a part of their own
        self.stopped = False
        with StateDatabase(state_db_path(nodedir)) as database:
            self.paused = self.job_name in database.overrides().paused
        if not self.paused:
            self._start_run()

    # -- the contract ----------------------------------------------------------------

    def status(self) -> Status:
        self.status_calls += 1
        if self._fault == "status" and self.status_calls >= self._fault_after:
            raise RuntimeError("simulated failure while reading the status")
        now = self._reactor.seconds()
        run = self._run
        if run is None:  # held before its first run
            peers = tuple(Peer(tubid=t, nickname=n, limit_up=c) for t, n, c in self._peers)
            return Status(at=now, jobs=(Job(name=self.job_name, state="paused"),), peers=peers)
        fraction = 1.0 if run["duration"] == 0 else min((now - run["start"]) / run["duration"], 1)
        state = "running"
        failure = None
        if self._fault == "job" and fraction >= 0.5:
            state, failure = "failed", "simulated: storage server went away"
            fraction = 0.5
        elif fraction >= 1 and not run["recorded"]:
            self._finish(run)
        if run["recorded"]:
            state = "done"
        in_flight = 0 if run["recorded"] else int(run["share_bytes"] * fraction)
        peers = tuple(
            Peer(
                tubid=tubid,
                nickname=name,
                sent_bytes=self._sent[tubid] + in_flight,
                rate_up=0.0 if fraction >= 1 else run["rate"],
                limit_up=cap,
            )
            for tubid, name, cap in self._peers
        )
        done = int(fraction * run["upload_bytes"]) + run["reused_bytes"]
        progress = Progress(
            phase="finished" if run["recorded"] else "walking",
            elapsed_seconds=min(now, run["start"] + run["duration"]) - run["start"],
            files_seen=run["files"],
            files_uploaded=int(fraction * run["uploads"]),
            files_reused=run["reused"],
            files_skipped=run["skipped"],
            bytes_uploaded=int(fraction * run["upload_bytes"]),
            bytes_done=done,
            estimated_files=run["files"],
            estimated_bytes=run["upload_bytes"] + run["reused_bytes"],
            eta_seconds=max(run["start"] + run["duration"] - now, 0.0),
        )
        job = Job(
            name=self.job_name,
            state=state,
            progress=progress,
            last_success=self._last_success,
            last_failure=failure,
        )
        return Status(at=now, jobs=(job,), peers=peers)

    def run_now(self, job: str, force: bool = False) -> None:
        self.calls.append(f"run_now {job}")
        if job != self.job_name or self.paused:
            raise RuntimeError(f"cannot run {job!r} now (paused: {self.paused})")
        self._start_run()

    def pause(self, job: str) -> None:
        self.calls.append(f"pause {job}")
        self.paused = True

    def resume(self, job: str) -> None:
        self.calls.append(f"resume {job}")
        if self.paused and self._run is None:
            self._start_run()
        self.paused = False

    async def stop(self) -> None:
        self.calls.append("stop")
        self.stopped = True

    # -- the simulation --------------------------------------------------------------

    def _start_run(self) -> None:
        files, skipped = [], 0
        for dirpath, dirnames, filenames in os.walk(self._source):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if path.is_symlink():
                    skipped += 1
                    continue
                st = path.stat()
                files.append((str(path), st.st_size, st.st_mtime_ns))
        uploads = [f for f in files if self._known.get(f[0]) != (f[1], f[2])]
        share = sum(-(-size // SHARE_NEEDED) for _, size, _ in uploads if size > LITERAL_MAX_BYTES)
        slowest = min(cap for _, _, cap in self._peers)
        speed = UNCAPPED_SPEED if math.isinf(slowest) else slowest * self._pace
        duration = share / speed
        self._run = {
            "start": self._reactor.seconds(),
            "duration": math.inf if self._fault == "hang" else duration,
            "rate": speed,
            "files": len(files),
            "uploads": len(uploads),
            "upload_bytes": sum(size for _, size, _ in uploads),
            "reused": len(files) - len(uploads),
            "reused_bytes": sum(size for _, size, _ in files) - sum(s for _, s, _ in uploads),
            "skipped": skipped,
            "share_bytes": share,
            "pending": {path: (size, mtime) for path, size, mtime in uploads},
            "recorded": False,
        }

    def _finish(self, run: dict[str, Any]) -> None:
        run["recorded"] = True
        self._known.update(run["pending"])
        for tubid in self._sent:
            self._sent[tubid] += run["share_bytes"]
        self._last_success = run["start"] + run["duration"]


async def start_simulated_governor(reactor: Any, nodedir: str, **kwargs: Any) -> SimulatedGovernor:
    """``start_governor``'s double."""
    return SimulatedGovernor(reactor, nodedir, **kwargs)
