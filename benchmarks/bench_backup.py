"""Benchmark of the governed node's backups against ``tahoe backup`` on one local grid.

Prints JSON. One run of each tool per figure, on the same loopback grid
(an introducer and 3 storage servers, ``tahoe run`` subprocesses, shares
2-of-3, Foolscap storage) and the same source tree:

- ``files``: first upload of many small files (10,000 of 1 KiB in 100
  directories): our files/s / ``tahoe backup``'s (target >= 3). With it, the
  ceiling any walker could reach here (``tahoe_uploader_alone``): a third node
  uploading the same files with Tahoe's uploader and nothing else,
  ``--ceiling-in-flight`` (32) at once, its files/s, the CPU per file of it
  and of the storage servers, and the files/s those costs allow with every
  core busy;
- ``rescan``: a second run over the same, unchanged tree: ``tahoe backup``
  time / ours (target >= 5);
- ``throughput``: first upload of 200 MB in 20 files, uncapped: our bytes/s /
  ``tahoe backup``'s (target >= 1.0);
- ``memory``: our node uploading one large file to a grid whose first storage
  server is capped at 256 KiB/s (``[bandwidth] peer.storage0.up``): the peak
  RSS growth of the node process over the first ``--memory-seconds`` of the
  run (target <= 64 MB). No ``tahoe backup`` side.

Our side is the product path: a governed node (``create_governed_client`` and
``govern``, as ``tahoe-governor run`` does) in a subprocess of this script
with a ``[backups]`` job whose source is the tree; the scheduler starts the
job, the walker uploads through the node's own uploader. Its time is from the
moment the governor is attached (the node is already connected, as a
long-running node is) until the job's run is done. Its RSS is read by this
script with psutil from outside, every 20 ms, and the node reports its own
``ru_maxrss`` too.

The ``tahoe backup`` side: a plain ``tahoe run`` client node on the same grid
(``[client] force_foolscap = true`` as well, so both use the same storage
protocol), and ``tahoe -d NODEDIR backup SOURCE backup:bench`` as a timed
subprocess, with its backupdb in its own node directory. Its time includes the
command's start-up (imports, reading the config), as a user pays it; the start-up
of ``tahoe -d NODEDIR list-aliases``, measured in the same run, is given too,
with the rescan ratio without it.

The two client nodes have separate directories, so separate backupdbs, and
each its own random convergence secret (made by ``tahoe create-client``), so
the second tool to upload a file finds none of the first tool's shares.

    python benchmarks/bench_backup.py [--quick] [--figures files,rescan,throughput,memory]
        [--small-files N --small-dirs N] [--profile DIR] [--only-ours]

``--only-ours`` runs our two small-file runs alone (no ratios), for profiling.

``--remote-ms 20`` puts every storage server (and the introducer) 20 ms away
each way (root; ``tests/node/netns_lab.py``): the servers in a network
namespace of their own behind a user-space delay element, both client nodes
and this script in the lab's client namespace. There round trips, not the two
shared cores, bound ``tahoe backup``'s one file at a time, and files in flight
should win by far more (the issue's target for ``files`` there: >= 3 as well).
At the issue's sizes a run takes about 20 minutes on a shared 2-core machine
(10,000 small files, twice: `tahoe backup` manages about 20 files/s there);
``--small-files 2000 --small-dirs 20`` takes about 7, ``--quick`` about 2.
Every size used is in the JSON (``tree``). See docs/benchmarks.md, "Backup".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil

KiB = 1024
MB = 1_000_000
FIGURES = ("files", "rescan", "throughput", "memory")
JOB = "b1"
ALIAS = "backup"
TIMEOUT = 3600.0  # the 10,000 files 20 ms away take `tahoe backup` about 36 minutes
"""Seconds any single backup may take before the benchmark gives up."""
SAMPLE_SECONDS = 0.02


def grid_module() -> Any:
    """The module of ``LocalGrid`` (the demo package's, or else the tests')."""
    try:
        from tahoe_governor.demo import grid  # type: ignore[attr-defined]
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests import grid
    return grid


# -- source trees ---------------------------------------------------------------


def make_small_tree(root: Path, files: int, directories: int, size: int) -> int:
    """``files`` files of ``size`` random bytes spread over ``directories``; total bytes."""
    for i in range(files):
        folder = root / f"d{i % directories:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return files * size


def make_big_tree(root: Path, files: int, size: int) -> int:
    """``files`` files of ``size`` random bytes in one directory; total bytes."""
    root.mkdir(parents=True)
    chunk = 4 * 1024 * 1024
    for i in range(files):
        with open(root / f"big{i:02d}.bin", "wb") as f:
            left = size
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    return files * size


# -- our side: the governed node in a subprocess ---------------------------------


class GovernedNode:
    """A governed client node run by this script in ``--governed-node`` mode.

    The child connects to the grid, makes the target alias if there is none,
    says ``ready``, waits for a line on stdin, attaches the governor (the job
    starts) and reports the run as JSON on stdout. This side samples the
    child's RSS meanwhile.
    """

    def __init__(self, nodedir: Path, workdir: Path, profile: Path | None = None) -> None:
        self.nodedir = nodedir
        self.workdir = workdir
        self.profile = profile
        self.process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None

    def run(self, run_now: bool = False, seconds: float | None = None,
            bare_in_flight: int | None = None) -> dict[str, Any]:
        """One run of the job; the child's report plus RSS figures.

        ``bare_in_flight``: instead of the job, upload every file of its source
        with Tahoe's own uploader alone, that many at once (the ceiling figure).
        """
        self._log = open(self.nodedir / "bench-node.log", "ab")
        argv = [sys.executable, str(Path(__file__).resolve()),
                "--governed-node", str(self.nodedir)]
        if bare_in_flight is not None:
            argv += ["--bare-in-flight", str(bare_in_flight)]
        if run_now:
            argv.append("--run-now")
        if seconds is not None:
            argv += ["--stop-after", str(seconds)]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, cwd=self.workdir, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            ready = self._read_report("ready")
            node = psutil.Process(self.process.pid)
            sampler = RssSampler(node)
            baseline = node.memory_info().rss
            profiler = self._start_profiler(self.process.pid)
            sampler.start()
            cpu_before = sum(node.cpu_times()[:2])
            assert self.process.stdin is not None
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
            report = self._read_report("result")
            report["cpu_seconds"] = sum(node.cpu_times()[:2]) - cpu_before
            sampler.stop()
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                profiler.wait(60)
            self.process.wait(60)
        finally:
            self.stop()
        report["rss"] = {
            "baseline_bytes": baseline,
            "peak_bytes": sampler.peak,
            "peak_growth_bytes": sampler.peak - baseline,
            "samples": sampler.count,
            "ru_maxrss_growth_bytes": report.pop("ru_maxrss_bytes") - ready["ru_maxrss_bytes"],
            "max_per_10s_bytes": sampler.max_per(10.0),
        }
        return report

    def _start_profiler(self, pid: int) -> subprocess.Popen[bytes] | None:
        """py-spy sampling the node (``--profile``), collapsed stacks to a file."""
        if self.profile is None:
            return None
        py_spy = Path(sys.executable).parent / "py-spy"
        out = self.profile.with_suffix(".folded")
        return subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
             "--threads", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _read_report(self, kind: str) -> dict[str, Any]:
        """The child's next report of ``kind``; it is killed if none comes within TIMEOUT."""
        process = self.process
        assert process is not None and process.stdout is not None
        watchdog = threading.Timer(TIMEOUT, process.kill)  # readline then sees the end
        watchdog.start()
        try:
            for line in process.stdout:
                if line.startswith("{"):
                    report: dict[str, Any] = json.loads(line)
                    if report.get("kind") == kind:
                        return report
        finally:
            watchdog.cancel()
        raise RuntimeError(f"governed node exited (or was killed after {TIMEOUT} s) "
                           f"before {kind!r}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return (self.nodedir / "bench-node.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            end_process(process)
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class RssSampler:
    """Reads a process's RSS every ``SAMPLE_SECONDS`` in a thread; keeps the peak."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak = 0
        self.count = 0
        self.samples: list[tuple[float, int]] = []

    def start(self) -> None:
        self._start = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.count += 1
            self.samples.append((time.monotonic() - self._start, rss))
            self._stop.wait(SAMPLE_SECONDS)

    def max_per(self, seconds: float) -> list[int]:
        """The largest RSS in each ``seconds`` of the sampling (shows a trend)."""
        buckets: dict[int, int] = {}
        for t, rss in self.samples:
            k = int(t // seconds)
            buckets[k] = max(buckets.get(k, 0), rss)
        return [buckets[k] for k in sorted(buckets)]


def governed_node_main(nodedir: str, run_now: bool, stop_after: float | None,
                       bare_in_flight: int | None) -> None:
    """The child: run the governed node, one run of the job, report it (see GovernedNode)."""
    from twisted.internet import task
    from twisted.internet.defer import ensureDeferred

    # react() exits the process: 0, or 1 after printing the failure.
    task.react(lambda reactor: ensureDeferred(
        _governed_node(reactor, Path(nodedir), run_now, stop_after, bare_in_flight)))


class _NoShaping:
    """A shaper that installs nothing: the node's Tubs stay Foolscap's own."""

    def install(self, tub: Any) -> None:
        pass


async def _bare_uploads(client: Any, nodedir: Path, in_flight: int) -> dict[str, Any]:
    """Upload every file of the job's source with Tahoe's uploader alone, ``in_flight`` at once.

    No walker, backupdb, directories, throttle or governor: the cost of the
    uploads themselves, the ceiling for any walker on this node and grid.
    """
    import configparser

    from allmydata.immutable.upload import FileName
    from twisted.internet.defer import DeferredSemaphore, gatherResults

    cfg = configparser.ConfigParser()
    cfg.read(nodedir / "tahoe.cfg")
    source = cfg["backups"][f"{JOB}.source"]
    paths = sorted(str(p) for p in Path(source).rglob("*") if p.is_file())
    slots = DeferredSemaphore(in_flight)
    await gatherResults([slots.run(client.upload, FileName(path, client.convergence))
                         for path in paths])
    size = sum(os.path.getsize(p) for p in paths)
    return {"phase": "finished", "files_seen": len(paths), "files_uploaded": len(paths),
            "bytes_uploaded": size}


async def _governed_node(
    reactor: Any, nodedir: Path, run_now: bool, stop_after: float | None,
    bare_in_flight: int | None,
) -> None:
    from zoneinfo import ZoneInfo

    from foolscap.eventual import flushEventualQueue
    from twisted.internet import task, threads

    from tahoe_governor.app import govern
    from tahoe_governor.node import create_governed_client, read_governed_config
    from tahoe_governor.status import public_dict
    from tahoe_governor.throttle import Shaper

    def report(kind: str, **fields: Any) -> None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        print(json.dumps({"kind": kind, "ru_maxrss_bytes": maxrss, **fields}), flush=True)

    shaper = Shaper(reactor) if bare_in_flight is None else _NoShaping()
    client = await create_governed_client(read_governed_config(str(nodedir)), shaper, reactor)
    client.startService()
    try:
        connected = client.storage_broker.when_connected_enough(3)
        connected.addTimeout(60, reactor)
        await connected
        aliases = nodedir / "private" / "aliases"
        if not aliases.exists():
            root = await client.create_dirnode()
            aliases.write_text(f"{ALIAS}: {root.get_uri().decode()}\n")
        report("ready")
        await threads.deferToThread(sys.stdin.readline)

        started = time.monotonic()
        if bare_in_flight is not None:
            fields = await _bare_uploads(client, nodedir, bare_in_flight)
            report("result", state="done", wall_seconds=time.monotonic() - started,
                   failure=None, progress=fields)
            return
        governor = govern(reactor, client, ZoneInfo("UTC"))
        runner = governor.scheduler.runners[JOB]
        if run_now:
            governor.controls.run_now(JOB)
        # Until a run of this process ends (jobs start once the grid is there,
        # so the lifecycle's initial "done" is no answer).
        while runner.last_result is None and runner.lifecycle.state != "failed":
            if stop_after is not None and time.monotonic() - started >= stop_after:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        wall = time.monotonic() - started
        state = runner.lifecycle.state
        if state == "done" and runner.last_result is not None:
            progress = runner.last_result.progress
        else:
            progress = runner.progress()
        fields = public_dict(progress) if progress is not None else {}
        report("result", state=state, wall_seconds=wall,
               failure=runner.failure_summary if state == "failed" else None,
               progress=fields)
    finally:
        await client.stopService()
        await flushEventualQueue()


# -- the tahoe backup side ------------------------------------------------------


def tahoe_command() -> list[str]:
    """The ``tahoe`` command of this Python environment."""
    script = Path(sys.executable).parent / "tahoe"
    return [str(script)] if script.exists() else [sys.executable, "-m", "allmydata.scripts.runner"]


class PlainClient:
    """A plain ``tahoe run`` client node on the grid, for ``tahoe backup`` to talk to."""

    def __init__(self, nodedir: Path) -> None:
        self.nodedir = nodedir
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.nodedir / "tahoe-run.log", "ab")
        self.process = subprocess.Popen(
            [*tahoe_command(), "run", str(self.nodedir)],
            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        url_file = self.nodedir / "node.url"
        while not (url_file.exists() and self._connected_servers() >= 3):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tahoe run {self.nodedir} exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the plain client did not connect to 3 servers within 60 s")
            time.sleep(0.1)
        self.tahoe("create-alias", ALIAS)

    def _connected_servers(self) -> int:
        url = (self.nodedir / "node.url").read_text().strip() + "?t=json"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
                servers = json.load(response)["servers"]
        except OSError:
            return 0
        return sum(1 for s in servers
                   if s["connection_status"].startswith("Connected") and s["version"])

    def tahoe(self, *argv: str) -> tuple[float, str]:
        """Run ``tahoe -d NODEDIR argv``; its wall time and output (raises if it fails)."""
        started = time.monotonic()
        done = subprocess.run([*tahoe_command(), "-d", str(self.nodedir), *argv],
                              capture_output=True, text=True, timeout=TIMEOUT)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"tahoe {' '.join(argv)} failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return elapsed, done.stdout + done.stderr

    def backup(self, source: Path) -> dict[str, Any]:
        node = psutil.Process(self.process.pid) if self.process else None
        node_cpu = sum(node.cpu_times()[:2]) if node else 0.0
        command_cpu = _children_cpu()
        seconds, output = self.tahoe("backup", str(source), f"{ALIAS}:bench")
        return {
            "wall_seconds": seconds,
            "node_cpu_seconds": (sum(node.cpu_times()[:2]) if node else 0.0) - node_cpu,
            "command_cpu_seconds": _children_cpu() - command_cpu,
            "output": output.strip().splitlines()[-2:],
        }

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            end_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None


def end_process(process: subprocess.Popen[Any]) -> None:
    """Terminate ``process`` (killed if it lingers 20 s) and close its stdin."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdin is not None:
        process.stdin.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the figures ------------------------------------------------------------------


class Bench:
    """The grid, the trees and the client node directories of one benchmark run."""

    def __init__(self, root: Path, args: argparse.Namespace,
                 placements: dict[str, Any] | None = None) -> None:
        self.root = root
        self.args = args
        self._grid_module = grid_module()
        (root / "grid").mkdir()
        self.grid = self._grid_module.LocalGrid(root / "grid", placements=placements)
        self._started: list[Any] = []

    def __enter__(self) -> Bench:
        self.grid.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for thing in reversed(self._started):
            thing.stop()
        self.grid.close()

    def governed_dir(self, name: str, source: Path, extra: str = "") -> Path:
        """A client node directory with the job ``b1`` backing up ``source`` to ``backup:bench``."""
        return self.grid.make_client_dir(
            self.root / name, nickname=name,
            extra_cfg=(f"[backups]\n{JOB}.source = {source}\n"
                       f"{JOB}.target = {ALIAS}:bench\n{JOB}.frequency = 1week\n{extra}"),
        )

    def tahoe_backup(self, client: PlainClient, source: Path) -> dict[str, Any]:
        servers = self.servers_cpu()
        result = client.backup(source)
        result["servers_cpu_seconds"] = self.servers_cpu() - servers
        return result

    def plain_client(self, name: str) -> PlainClient:
        nodedir = self.grid.make_client_dir(self.root / name, nickname=name)
        self._grid_module.set_tahoe_cfg(nodedir, {("client", "force_foolscap"): "true"})
        client = PlainClient(nodedir)
        self._started.append(client)
        client.start()
        return client

    def servers_cpu(self) -> float:
        """CPU seconds (user + system) the storage servers have used so far."""
        return sum(sum(psutil.Process(s.process.pid).cpu_times()[:2])
                   for s in self.grid.servers)

    def governed(self, nodedir: Path, figure: str, **kw: Any) -> dict[str, Any]:
        profile = self.args.profile and Path(self.args.profile).resolve() / figure
        node = GovernedNode(nodedir, self.root, profile)
        self._started.append(node)
        servers = self.servers_cpu()
        report = node.run(**kw)
        report["servers_cpu_seconds"] = self.servers_cpu() - servers
        if report["state"] not in ("done", "running"):
            raise RuntimeError(f"our run ended {report['state']}: {report['failure']}\n"
                               f"{node.log_tail()}")
        return report

    # -- small files: first upload and rescan ----------------------------------

    def small_files(self, want: set[str]) -> dict[str, Any]:
        a = self.args
        source = self.root / "small"
        total = make_small_tree(source, a.small_files, a.small_dirs, a.small_size)
        tree = {"files": a.small_files, "directories": a.small_dirs,
                "file_bytes": a.small_size, "total_bytes": total}
        ours_dir = self.governed_dir("governed-small", source)
        out: dict[str, Any] = {}
        if a.only_ours:  # for profiling: our two runs, no ratios
            out["ours_only"] = {"tree": tree, "files": _brief(self.governed(ours_dir, "files"))}
            if "rescan" in want:
                out["ours_only"]["rescan"] = _brief(
                    self.governed(ours_dir, "rescan", run_now=True))
            return out
        theirs = self.plain_client("plain-small")
        t_first = self.tahoe_backup(theirs, source)
        o_first = self.governed(ours_dir, "files")
        if "files" in want:
            t_rate = a.small_files / t_first["wall_seconds"]
            o_rate = a.small_files / o_first["wall_seconds"]
            out["files"] = {
                "tree": tree,
                "tahoe_backup": {**t_first, "files_per_second": t_rate},
                "ours": {**_brief(o_first), "files_per_second": o_rate},
                "ratio": o_rate / t_rate, "target": ">= 3",
            }
            if a.ceiling_in_flight:
                out["files"]["tahoe_uploader_alone"] = self.uploader_alone(
                    source, a.small_files, t_first, t_rate)
        if "rescan" in want:
            startup, _ = theirs.tahoe("list-aliases")
            t_again = self.tahoe_backup(theirs, source)
            o_again = self.governed(ours_dir, "rescan", run_now=True)
            t, o = t_again["wall_seconds"], o_again["wall_seconds"]
            out["rescan"] = {
                "tree": tree,
                "tahoe_backup": {**t_again, "command_startup_seconds": startup},
                "ours": _brief(o_again),
                "ratio": t / o,
                "ratio_without_tahoe_startup": (t - startup) / o,
                "target": ">= 5",
            }
        return out

    def uploader_alone(self, source: Path, files: int, t_first: dict[str, Any],
                       t_rate: float) -> dict[str, Any]:
        """The ceiling: Tahoe's uploader alone on the same tree, many files at once.

        A third node (its own convergence secret, so every share is new) uploads
        each file with ``client.upload`` and nothing else (no walker, backupdb,
        directories, shaping or governor), ``--ceiling-in-flight`` at once.
        Also the CPU per file of the node and of the storage servers, and the
        files/s those costs would allow with every core of the machine busy.
        """
        in_flight = self.args.ceiling_in_flight
        nodedir = self.governed_dir("uploader-alone", source)
        run = self.governed(nodedir, "ceiling", bare_in_flight=in_flight)
        rate = files / run["wall_seconds"]
        cpu_per_file = (run["cpu_seconds"] + run["servers_cpu_seconds"]) / files
        t_cpu_per_file = (t_first["node_cpu_seconds"] + t_first["command_cpu_seconds"]
                          + t_first["servers_cpu_seconds"]) / files
        cpus = os.cpu_count() or 1
        return {
            "in_flight": in_flight,
            "wall_seconds": run["wall_seconds"],
            "files_per_second": rate,
            "ratio_to_tahoe_backup": rate / t_rate,
            "node_cpu_ms_per_file": 1000 * run["cpu_seconds"] / files,
            "servers_cpu_ms_per_file": 1000 * run["servers_cpu_seconds"] / files,
            "tahoe_backup_cpu_ms_per_file": 1000 * t_cpu_per_file,
            "files_per_second_if_all_cpus_busy": cpus / cpu_per_file,
            "ratio_if_all_cpus_busy": cpus / cpu_per_file / t_rate,
        }

    # -- big files: uncapped throughput ------------------------------------------

    def throughput(self) -> dict[str, Any]:
        a = self.args
        source = self.root / "big"
        total = make_big_tree(source, a.big_files, a.big_mb * MB)
        theirs = self.plain_client("plain-big")
        ours_dir = self.governed_dir("governed-big", source)
        t_run = self.tahoe_backup(theirs, source)
        o_run = self.governed(ours_dir, "throughput")
        t_rate = total / t_run["wall_seconds"]
        o_rate = total / o_run["wall_seconds"]
        return {
            "tree": {"files": a.big_files, "file_bytes": a.big_mb * MB, "total_bytes": total},
            "tahoe_backup": {**t_run, "bytes_per_second": t_rate},
            "ours": {**_brief(o_run), "bytes_per_second": o_rate},
            "ratio": o_rate / t_rate, "target": ">= 1.0",
        }

    # -- memory while capped ------------------------------------------------------

    def memory(self) -> dict[str, Any]:
        a = self.args
        source = self.root / "huge"
        total = make_big_tree(source, 1, a.memory_file_mb * MB)
        capped = self.grid.servers[0].nickname
        ours_dir = self.governed_dir(
            "governed-capped", source,
            extra=f"[bandwidth]\npeer.{capped}.up = 256KiB/s\n",
        )
        run = self.governed(ours_dir, "memory", seconds=a.memory_seconds)
        growth = run["rss"]["peak_growth_bytes"]
        return {
            "tree": {"files": 1, "total_bytes": total},
            "cap": "peer.storage0.up = 256KiB/s",
            "measured_seconds": run["wall_seconds"],
            "ours": _brief(run),
            "peak_rss_growth_mb": growth / MB,
            "target": "<= 64 MB",
        }


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of our node's report worth printing."""
    p = report["progress"]
    keep = ("phase", "elapsed_seconds", "files_seen", "files_uploaded", "files_reused",
            "files_failed", "directories_created", "directories_reused", "bytes_uploaded")
    rss = report["rss"]
    return {
        "state": report["state"], "wall_seconds": report["wall_seconds"],
        "node_cpu_seconds": report["cpu_seconds"],
        "servers_cpu_seconds": report["servers_cpu_seconds"],
        "progress": {k: p.get(k) for k in keep},
        "rss_baseline_mb": rss["baseline_bytes"] / MB,
        "rss_peak_growth_mb": rss["peak_growth_bytes"] / MB,
        "ru_maxrss_growth_mb": rss["ru_maxrss_growth_bytes"] / MB,
        "rss_max_per_10s_mb": [round(b / MB, 1) for b in rss["max_per_10s_bytes"]],
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--figures", default=",".join(FIGURES),
                   help=f"comma-separated, from {', '.join(FIGURES)}")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (1,000 small files, 20 x 1 MB, 20 s capped, 64 MB file)")
    p.add_argument("--small-files", type=int)
    p.add_argument("--small-dirs", type=int)
    p.add_argument("--small-size", type=int, default=KiB)
    p.add_argument("--big-files", type=int, default=20)
    p.add_argument("--big-mb", type=int, help="size of each big file, MB")
    p.add_argument("--memory-file-mb", type=int)
    p.add_argument("--memory-seconds", type=float)
    p.add_argument("--profile", metavar="DIR",
                   help="py-spy our node during each figure; collapsed stacks to DIR/FIGURE.folded")
    p.add_argument("--ceiling-in-flight", type=int, default=32, metavar="N",
                   help="files: also time Tahoe's uploader alone with N uploads at once "
                        "(0: skip)")
    p.add_argument("--only-ours", action="store_true",
                   help="small files: our first run and rescan only, no tahoe backup, no ratios "
                        "(for profiling)")
    add_remote_ms_option(p)
    p.add_argument("--governed-node", help=argparse.SUPPRESS)
    p.add_argument("--run-now", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare-in-flight", type=int, help=argparse.SUPPRESS)
    p.add_argument("--stop-after", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = ({"small_files": 1000, "small_dirs": 10, "big_mb": 1,
                 "memory_file_mb": 64, "memory_seconds": 20.0} if args.quick else
                {"small_files": 10_000, "small_dirs": 100, "big_mb": 10,
                 "memory_file_mb": 1000, "memory_seconds": 75.0})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    figures = {f.strip() for f in args.figures.split(",") if f.strip()}
    unknown = figures - set(FIGURES)
    if unknown:
        p.error(f"unknown figure(s) {', '.join(sorted(unknown))}; expected some of "
                f"{', '.join(FIGURES)}")
    args.figures = figures
    return args


def add_remote_ms_option(parser: argparse.ArgumentParser) -> None:
    """``--remote-ms MS`` (default 0: loopback), for ``remote_servers``."""
    parser.add_argument("--remote-ms", type=float, default=0.0, metavar="MS",
                        help="every storage server this many ms away each way (root: network "
                             "namespaces and a delay element; see tests/node/netns_lab.py)")


def grid_description(remote_ms: float) -> str:
    """The grid a run used, for its JSON."""
    if not remote_ms:
        return "introducer + 3 storage servers (tahoe run, 127.0.0.1), shares 2-of-3"
    return (f"introducer + 3 storage servers (tahoe run), {remote_ms:g} ms away each way "
            f"(a network lab), shares 2-of-3")


@contextlib.contextmanager
def remote_servers(delay_ms: float, tag: str = "tgbak",
                   program: str = "bench_backup") -> Iterator[dict[str, Any] | None]:
    """With ``delay_ms``: a network lab (namespaces ``<tag>-*``, so two benchmarks' labs
    do not clash) whose one site, ``delay_ms`` away, holds the grid; this script runs in
    its client namespace meanwhile. Without: nothing (loopback)."""
    if not delay_ms:
        yield None
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.node.netns_lab import Lab, Site, unavailable

    from tahoe_governor.demo.local_grid import Placement

    if (reason := unavailable()) is not None:
        raise SystemExit(f"{program}: --remote-ms {reason}")
    lab = Lab(tag, [Site("servers", delay_ms=delay_ms)])
    with lab, lab.entered(lab.client):
        where = Placement(lab.address("servers"), lab.launcher("servers"))
        yield {name: where for name in ("introducer", "storage0", "storage1", "storage2")}


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.governed_node:
        governed_node_main(args.governed_node, args.run_now, args.stop_after,
                           args.bare_in_flight)
        return
    # SIGTERM cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack:
            placements = stack.enter_context(remote_servers(args.remote_ms))
            with Bench(root, args, placements) as bench:
                if args.figures & {"files", "rescan"}:
                    results.update(bench.small_files(args.figures))
                if "throughput" in args.figures:
                    results["throughput"] = bench.throughput()
                if "memory" in args.figures:
                    results["memory"] = bench.memory()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["run"] = {
        "quick": args.quick,
        "seconds": time.monotonic() - started,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "grid": grid_description(args.remote_ms),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
