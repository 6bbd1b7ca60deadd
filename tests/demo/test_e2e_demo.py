"""The demo end to end: real grid processes, and the real governor once it exists.

With the simulated governor (a test double) the demo's own work is proven on a
real local grid: the summary and exit status, and that an error or a Ctrl-C
at any point still stops every process it started and removes its directory.
The real ``tahoe-governor demo --quick`` runs once ``tahoe_governor.app``
(``start_governor``) is on the branch.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.signals import restore_default_sigint

REPO = Path(__file__).resolve().parents[2]
#: Seconds a demo (quick, or simulated) may take here; a hang fails rather than blocks.
DEMO_BUDGET = 180.0


def spawn_simulated(tmp_path: Path, fault: str, *demo_args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.demo.demo_with_simulated_governor",
            str(tmp_path),
            fault,
            "--quick",
            "--run-seconds",
            "5",
            *demo_args,
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=restore_default_sigint,
    )


class DemoOutput:
    """The demo's output read on a thread, so that no read can outlive a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.process.kill()
            pytest.fail(f"timed out waiting for {waiting_for}:\n" + "".join(self.seen))

    def until(self, marker: str, seconds: float) -> str:
        """Everything up to the first line starting with ``marker``."""
        deadline = time.monotonic() + seconds
        while (line := self._next(deadline, repr(marker))) is not None:
            self.seen.append(line)
            if line.startswith(marker):
                return "".join(self.seen)
        pytest.fail(f"the demo ended before {marker!r}:\n" + "".join(self.seen))

    def rest(self, seconds: float) -> tuple[int, str]:
        """The exit status and what was printed after the last :meth:`until`."""
        start = len(self.seen)
        deadline = time.monotonic() + seconds
        while (line := self._next(deadline, "the demo to end")) is not None:
            self.seen.append(line)
        return self.process.wait(max(1.0, deadline - time.monotonic())), "".join(self.seen[start:])


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=DEMO_BUDGET)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail("the demo did not finish in time:\n" + output)
    return process.returncode, output


def assert_cleaned_up(tmp_path: Path, output: str) -> None:
    """Every grid process the demo had started is gone, and its directory removed."""
    children = json.loads((tmp_path / "children.json").read_text())
    assert len(children) == 4, "an introducer and three storage servers were running"
    alive = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], output
    workdir = Path(re.search(r"Working in (\S+) \(removed at exit\)", output).group(1))  # type: ignore[union-attr]
    assert not workdir.exists(), output
    assert f"Removed {workdir}." in output


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (
            "start",
            "the governed node could not start: RuntimeError('simulated: the node could "
            "not start')",
        ),
        ("status", "unexpected error: RuntimeError('simulated failure while reading the status')"),
    ],
)
def test_error_mid_demo_still_stops_everything(tmp_path: Path, fault: str, reason: str) -> None:
    """An error while starting the governor or in the middle of a run: status 1 with the
    reason, every grid process stopped, the directory removed."""
    status, output = finish(spawn_simulated(tmp_path, fault))
    assert status == 1, output
    assert f"Demo failed: {reason}." in output
    assert_cleaned_up(tmp_path, output)


@pytest.mark.e2e
def test_sigterm_mid_run_stops_governor_then_grid(tmp_path: Path) -> None:
    """SIGTERM (as Ctrl-C, tested with --keep below) during a run: the governor is stopped,
    then the grid; status 130."""
    process = spawn_simulated(tmp_path, "hang")
    deadline = time.monotonic() + DEMO_BUDGET
    while not (tmp_path / "children.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "demo never started"
        time.sleep(0.1)
    time.sleep(1.0)  # let it get into the run
    process.send_signal(signal.SIGTERM)
    status, output = finish(process)
    assert status == 130, output
    assert output.index("Stopping the governed node") < output.index("Stopping the local grid")
    assert "Demo failed: interrupted." in output
    assert_cleaned_up(tmp_path, output)


@pytest.mark.e2e
def test_real_demo_quick(tmp_path: Path) -> None:
    """``tahoe-governor demo --quick``: the real governor backs up twice on the local grid,
    the DSL peer stays within 3 % of its cap, the second run reuses every unmodified file."""
    if importlib.util.find_spec("tahoe_governor.app") is None:
        pytest.skip("tahoe_governor.app (start_governor) is not on this branch yet")
    process = subprocess.Popen(
        [sys.executable, "-m", "tahoe_governor.cli.main", "demo", "--quick"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status, output = finish(process)
    assert status == 0, output
    assert re.search(r"\[ok\] full run, peer parents-dsl: achieved .* ≤ 1\.03", output), output
    assert re.search(
        r"\[ok\] incremental run reused (\d+) of \1 unmodified files and "
        r"uploaded 3 of 3 modified",
        output,
    ), output
    assert "[FAIL]" not in output and output.rstrip().endswith("Demo passed.")
    workdir = Path(re.search(r"Working in (\S+) \(removed at exit\)", output).group(1))  # type: ignore[union-attr]
    assert not workdir.exists()


@pytest.mark.e2e
def test_simulated_governor_passes_keeps_until_ctrl_c(tmp_path: Path) -> None:
    """On a real grid with a well-behaved governor, --keep: both runs, the summary with every
    check ok, where to look, still running until Ctrl-C, then exit status 0 and nothing
    left behind."""
    process = spawn_simulated(tmp_path, "none", "--keep")
    output_reader = DemoOutput(process)
    head = output_reader.until("Press Ctrl-C", DEMO_BUDGET)
    assert "Peers (bytes the node sent to each storage server" in head
    assert re.search(r"\[ok\] full run, peer parents-dsl: achieved .* = 0\.9\d\d ≤ 1\.03", head)
    assert re.search(
        r"\[ok\] incremental run reused (\d+) of \1 unmodified files and uploaded 3 of 3 modified",
        head,
    )
    assert "[FAIL]" not in head
    assert "public page   http://127.0.0.1:1/governor\n" in head
    assert "private page  http://127.0.0.1:1/governor/TOKEN/\n" in head
    assert "metrics       http://127.0.0.1:1/metrics\n" in head
    assert re.search(r"command       tahoe-governor status \S+/governed\n", head)
    time.sleep(1.0)
    assert process.poll() is None, "still running until Ctrl-C"
    process.send_signal(signal.SIGINT)
    status, rest = output_reader.rest(DEMO_BUDGET)
    output = head + rest
    assert status == 0, output
    assert output.rstrip().endswith("Demo passed.")
    assert_cleaned_up(tmp_path, output)
