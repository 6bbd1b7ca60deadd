"""Benchmark of a maintenance pass against ``tahoe deep-check --add-lease`` on one local grid.

Prints JSON. On a loopback grid (an introducer and 3 storage servers, ``tahoe
run`` subprocesses, shares 2-of-3, Foolscap storage), ``tahoe backup`` makes
an archive of ``--files`` small files; then, on the same client node directory
and the same archive:

- ``deep_check``: ``tahoe -d NODEDIR deep-check --add-lease backup:bench``
  through a plain ``tahoe run`` node (wall time of the command, start-up
  included, as a user pays it; ``tahoe list-aliases``'s start-up is given too);
- ``full_pass``: the same node directory run by ``tahoe-governor run`` with
  ``[maintenance] m1.target = backup:bench`` (verify 0 %, add_lease true,
  repair true, no caps): the first pass, from the run's start to its end as the
  state database records them (the node has met its grid by then);
- ``resumed_pass``: a second pass started by hand (``tahoe-governor start``),
  the node SIGKILLed once half of the pass's objects are checked, started
  again and the pass started again: the resumed run's time.

Ratios: ``deep_check / full_pass`` (target >= 1.0: governed and resumable, yet
no slower) and ``resumed_pass / full_pass`` (target <= 0.55: a resumed pass
redoes nothing).

    PYTHONPATH=src python benchmarks/bench_maintenance.py [--files N] [--dirs N] [--size BYTES]

The issue's size is 10,000 files; making that archive with ``tahoe backup``
takes about 10 minutes here (about 20 files/s), so the default is 2,000.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backup import (  # noqa: E402  (a sibling script, not a package)
    ALIAS,
    TIMEOUT,
    PlainClient,
    grid_module,
    make_small_tree,
)

TASK = "m1"


def governor_command() -> list[str]:
    """The ``tahoe-governor`` command of this Python environment (this checkout's sources)."""
    return [sys.executable, "-m", "tahoe_governor.cli.main"]


class GovernedRun:
    """``tahoe-governor run NODEDIR`` as a subprocess."""

    def __init__(self, nodedir: Path) -> None:
        self.nodedir = nodedir
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        (self.nodedir / "node.url").unlink(missing_ok=True)
        self._log = open(self.nodedir / "governor-run.log", "ab")
        self.process = subprocess.Popen([*governor_command(), "run", str(self.nodedir)],
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"tahoe-governor run exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the governed node did not serve its pages within 120 s")
            time.sleep(0.2)

    def _answers(self) -> bool:
        url_file = self.nodedir / "node.url"
        if not url_file.exists():
            return False
        try:
            with urllib.request.urlopen(url_file.read_text().strip() + "governor?t=json",
                                        timeout=2) as response:  # loopback only
                return response.status == 200
        except OSError:
            return False

    def command(self, action: str, *words: str) -> None:
        """``tahoe-governor ACTION NODEDIR WORDS...`` (raises if it fails)."""
        subprocess.run([*governor_command(), action, str(self.nodedir), *words],
                       check=True, capture_output=True, timeout=60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def _close(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def query(nodedir: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the node's state database (read-only, alongside the running node)."""
    path = nodedir / "private" / "governor.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # the tables are made when the node first opens the file


def completed_runs(nodedir: Path) -> list[tuple[float, float]]:
    """(started, ended) of the task's completed runs, oldest first."""
    return [(float(a), float(b)) for a, b in query(
        nodedir, "SELECT started, ended FROM runs WHERE job = ? AND outcome = 'completed' "
        "ORDER BY id", (TASK,))]


def wait_until(what: str, ready: Any, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def checked_in_pass(nodedir: Path, number: int) -> int:
    rows = query(nodedir, "SELECT COUNT(*) FROM maintenance_objects WHERE job = ? "
                 "AND checked_pass = ?", (TASK, number))
    return int(rows[0][0]) if rows else 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    grid_lib = grid_module()
    with tempfile.TemporaryDirectory(prefix="bench-maintenance-") as tmp:
        root = Path(tmp)
        grid = grid_lib.LocalGrid(root / "grid")
        grid.start()
        try:
            source = root / "source"
            make_small_tree(source, args.files, args.dirs, args.size)
            nodedir = grid.make_client_dir(root / "client")
            plain = PlainClient(nodedir)
            plain.start()
            try:
                backup_seconds, _ = plain.tahoe("backup", str(source), f"{ALIAS}:bench")
                startup_seconds, _ = plain.tahoe("list-aliases")
                deep_seconds, output = plain.tahoe("deep-check", "--add-lease",
                                                   f"{ALIAS}:bench")
            finally:
                plain.stop()
            with open(nodedir / "tahoe.cfg", "a") as cfg:
                cfg.write(f"\n[maintenance]\n{TASK}.target = {ALIAS}:bench\n"
                          f"{TASK}.frequency = 1week\n{TASK}.verify = 0%\n")
            node = GovernedRun(nodedir)
            node.start()
            try:
                wait_until("the first pass", lambda: len(completed_runs(nodedir)) >= 1)
                (first,) = completed_runs(nodedir)
                objects = checked_in_pass(nodedir, 1)
                node.command("start", TASK)
                wait_until("half of the second pass",
                           lambda: checked_in_pass(nodedir, 2) >= objects // 2)
                node.kill()
                checked_before_kill = checked_in_pass(nodedir, 2)
                node.start()
                node.command("start", TASK)
                wait_until("the resumed pass", lambda: len(completed_runs(nodedir)) >= 2)
                resumed = completed_runs(nodedir)[1]
            finally:
                node.stop()
        finally:
            grid.close()
    full = first[1] - first[0]
    resumed_seconds = resumed[1] - resumed[0]
    return {
        "tree": {"files": args.files, "directories": args.dirs, "file_bytes": args.size},
        "archive_backup_seconds": round(backup_seconds, 2),
        "objects_per_pass": objects,
        "deep_check": {"wall_seconds": round(deep_seconds, 3),
                       "command_startup_seconds": round(startup_seconds, 3),
                       "output": output.strip().splitlines()[-3:]},
        "full_pass_seconds": round(full, 3),
        "resumed_pass": {"seconds": round(resumed_seconds, 3),
                         "checked_before_the_kill": checked_before_kill},
        "ratios": {
            "deep_check_over_full_pass": round(deep_seconds / full, 3),
            "deep_check_without_startup_over_full_pass":
                round((deep_seconds - startup_seconds) / full, 3),
            "resumed_over_full_pass": round(resumed_seconds / full, 3),
        },
        "targets": {"deep_check_over_full_pass": ">= 1.0", "resumed_over_full_pass": "<= 0.55"},
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dirs", type=int, default=40)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file (> 55: not literal)")
    print(json.dumps(run(parser.parse_args(argv)), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
