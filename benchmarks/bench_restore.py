"""Benchmark of ``tahoe-governor restore`` against ``tahoe cp -r`` of the same archive.

Prints JSON. On one local grid (an introducer and 3 storage servers, ``tahoe
run`` subprocesses on loopback, shares 2-of-3, Foolscap storage) a governed
node (``tahoe-governor run``) backs up two trees with two jobs:

- ``throughput``: 200 MB in 20 files; figure: our bytes/s / ``tahoe cp -r``'s
  (target >= 1.0);
- ``files``: 10,000 files of 1 KiB in 100 directories; figure: our files/s /
  ``tahoe cp -r``'s (target >= 3, with ``--parallel`` files in flight);

then, while that node runs idle, each archive (``Latest``) is restored into
fresh directories by ``tahoe-governor restore NODEDIR JOB DEST`` and by
``tahoe -d NODEDIR cp -r ALIAS:PATH/Latest DEST`` through the same node, so
both read through the same web server and the same Foolscap connections,
``--rounds`` times each (default 2), the order alternating (ours first in the
first round) so that neither always finds the other's shares in the page
cache; each tool's best time counts (the machine may be shared). Each time is
the command's wall time, start-up included, as a user pays it. Every result
is compared with the source, byte for byte.

Memory, read every 20 ms with psutil: each command's peak RSS, and its growth
from when the first file lands in DEST (the archive listed, the downloads
begun) to the peak (target <= 64 MB); and the node's peak growth meanwhile.

    python benchmarks/bench_restore.py [--scale 0.1] [--figures throughput,files]
        [--parallel N] [--rounds N] [--remote-ms MS]

``--scale`` multiplies both sizes (the big files' size and the number of small
files and directories): 0.1 is 20 MB and 1,000 files.

``--remote-ms 20`` puts the introducer and every storage server 20 ms away
each way (root), as ``bench_backup.py --remote-ms`` does and with its code: the
servers in a network namespace of their own behind a user-space delay element
(``tests/node/netns_lab.py``), the node, both commands and this script in the
lab's client namespace. There each file's round trips, not the shared cores,
bound ``tahoe cp -r``'s one file at a time. See docs/benchmarks.md, "Restore".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from bench_backup import (  # noqa: E402
    MB,
    SAMPLE_SECONDS,
    KiB,
    RssSampler,
    add_remote_ms_option,
    grid_description,
    make_big_tree,
    make_small_tree,
    remote_servers,
    tahoe_command,
)
from tahoe_governor.cli.restore import DEFAULT_PARALLEL  # noqa: E402
from tahoe_governor.demo.local_grid import LocalGrid, poll  # noqa: E402

FIGURES = ("throughput", "files")
JOBS = {"throughput": "big", "files": "small"}
TIMEOUT = 7200.0


def governor_command() -> list[str]:
    return [sys.executable, "-m", "tahoe_governor.cli.main"]


def public_jobs(nodedir: Path) -> dict[str, Any]:
    try:
        url = (nodedir / "node.url").read_text().strip() + "governor?t=json"
        with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
            return {job["name"]: job for job in json.load(response)["jobs"]}
    except (OSError, ValueError, KeyError):
        return {}


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used so far."""
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def timed(argv: list[str], node_pid: int, writing: Path, server_pids: list[int]
          ) -> dict[str, Any]:
    """Run ``argv``; its wall time, its peak RSS and the peak's growth from when
    ``writing`` first holds a file (the listing done, the downloads started), and the
    node's peak RSS growth."""
    node_cpu, servers_cpu = cpu_seconds([node_pid]), cpu_seconds(server_pids)
    started_at = time.monotonic()
    node = RssSampler(psutil.Process(node_pid))
    node.start()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   text=True)
        command = RssSampler(psutil.Process(process.pid))
        command.start()
        writing_at = None
        while process.poll() is None:
            if writing_at is None and writing.exists() and \
                    any(path.is_file() for path in writing.rglob("*")):
                writing_at = time.monotonic() - started_at
            time.sleep(SAMPLE_SECONDS)
        seconds = time.monotonic() - started_at
        command.stop()
        node.stop()
        out.seek(0)
        output = out.read()
    command_cpu = sum(os.times()[2:4])
    node_cpu, servers_cpu = cpu_seconds([node_pid]) - node_cpu, \
        cpu_seconds(server_pids) - servers_cpu
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({process.returncode}):\n"
                           f"{output[-4000:]}")
    # The command's samples are timed from its own start, a moment after ours.
    baseline = next((rss for t, rss in command.samples if t >= (writing_at or seconds)),
                    command.peak)
    node_baseline = node.samples[0][1] if node.samples else node.peak
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(command.peak / MB, 1),
            "rss_growth_while_downloading_mb": round((command.peak - baseline) / MB, 1),
            "node_rss_growth_mb": round((node.peak - node_baseline) / MB, 1),
            "cpu_seconds": {"node": round(node_cpu, 2), "servers": round(servers_cpu, 2),
                            "all_commands_so_far": round(command_cpu, 2)},
            "output": output.strip().splitlines()[-1:]}


def same_files(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return files(a) == files(b)


def one_round(figure: str, nodedir: Path, node_pid: int, server_pids: list[int],
              source: Path, work: Path, parallel: int, ours_first: bool) -> dict[str, Any]:
    """Each tool restores the figure's archive once into a fresh directory; their reports."""
    job = JOBS[figure]
    ours_dest, cp_dest = work / "ours", work / "cp"
    ours_argv = [*governor_command(), "restore", str(nodedir), job, str(ours_dest),
                 "--parallel", str(parallel)]
    cp_argv = [*tahoe_command(), "-d", str(nodedir), "cp", "-r", f"backup:{job}/Latest",
               str(cp_dest)]
    cp_dest.mkdir(parents=True)  # tahoe cp -r puts the directory Latest in it
    runs = {}
    for name, argv, dest in (("ours", ours_argv, ours_dest), ("tahoe_cp", cp_argv, cp_dest)) \
            if ours_first else (("tahoe_cp", cp_argv, cp_dest), ("ours", ours_argv, ours_dest)):
        runs[name] = timed(argv, node_pid, dest, server_pids)
    for name, dest in (("ours", ours_dest), ("tahoe_cp", cp_dest / "Latest")):
        if not same_files(source, dest):
            found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))[:5]
            raise RuntimeError(f"{figure}: {name}'s tree differs from the source ({found}...)")
    shutil.rmtree(work)
    return runs


def run_figure(figure: str, nodedir: Path, node_pid: int, server_pids: list[int], source: Path,
               total: int, files: int, work: Path, parallel: int, rounds: int
               ) -> dict[str, Any]:
    """``rounds`` rounds, the order alternating; the ratio of each tool's best time."""
    runs = [one_round(figure, nodedir, node_pid, server_pids, source, work / f"{figure}-{i}",
                      parallel, ours_first=i % 2 == 0) for i in range(rounds)]
    ours = min(r["ours"]["seconds"] for r in runs)
    cp = min(r["tahoe_cp"]["seconds"] for r in runs)
    result: dict[str, Any] = {
        "tree": {"files": files, "total_bytes": total}, "rounds": runs,
        "ours_best_seconds": ours, "tahoe_cp_best_seconds": cp,
        "ours_peak_rss_growth_mb": max(r["ours"]["rss_growth_while_downloading_mb"]
                                       for r in runs)}
    if figure == "throughput":
        result["ratio_bytes_per_second"] = round(cp / ours, 2)
        result["ours_mb_per_second"] = round(total / ours / MB, 2)
        result["target"] = ">= 1.0"
    else:
        result["ratio_files_per_second"] = round(cp / ours, 2)
        result["ours_files_per_second"] = round(files / ours, 1)
        result["target"] = ">= 3"
    result["memory_target"] = "ours' rss_growth_while_downloading_mb <= 64"
    return result


def restore_figures(root: Path, args: argparse.Namespace, figures: list[str],
                    placements: dict[str, Any] | None) -> dict[str, Any]:
    """Start the grid (its nodes where ``placements`` say) and the node, back up the
    figures' trees, time both tools' restores; the results by figure."""
    results: dict[str, Any] = {}
    grid = LocalGrid(root / "grid", placements=placements)
    node = None
    try:
        grid.start()
        trees: dict[str, tuple[Path, int, int]] = {}
        if "throughput" in figures:
            big = root / "big"
            trees["throughput"] = (big, make_big_tree(big, 20, int(10 * MB * args.scale)), 20)
        if "files" in figures:
            small, count = root / "small", max(10, int(10_000 * args.scale))
            trees["files"] = (small, make_small_tree(small, count, max(1, count // 100), KiB),
                              count)
        jobs = "".join(f"{JOBS[f]}.source = {trees[f][0]}\n{JOBS[f]}.target = backup:{JOBS[f]}\n"
                       f"{JOBS[f]}.frequency = 1week\n" for f in figures)
        nodedir = grid.make_client_dir(root / "client", extra_cfg="[backups]\n" + jobs)
        (nodedir / "private" / "aliases").write_text(f"backup: {grid.create_directory()}\n")
        log = open(root / "node.log", "ab")
        node = subprocess.Popen([*governor_command(), "run", str(nodedir)], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        backup_started = time.monotonic()
        poll("the backups", lambda: all(public_jobs(nodedir).get(JOBS[f], {}).get("last_success")
                                        for f in figures), time.monotonic() + TIMEOUT)
        results["backup_seconds"] = round(time.monotonic() - backup_started, 1)
        for figure in figures:
            source, total, files = trees[figure]
            server_pids = [s.process.pid for s in grid.servers if s.process is not None]
            results[figure] = run_figure(figure, nodedir, node.pid, server_pids, source, total,
                                         files, root, args.parallel, args.rounds)
    finally:
        if node is not None:
            node.terminate()
            node.wait(30)
        grid.close()
    return results



def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the sizes (1.0: 200 MB in 20 files, 10,000 files of 1 KiB)")
    p.add_argument("--figures", default=",".join(FIGURES),
                   help=f"comma-separated, from {', '.join(FIGURES)}")
    p.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                   help=f"our restore's files in flight (default {DEFAULT_PARALLEL}, "
                        "the command's)")
    p.add_argument("--rounds", type=int, default=2,
                   help="restores by each tool per figure, the order alternating; the best "
                        "time of each counts")
    add_remote_ms_option(p)
    args = p.parse_args(argv)
    figures = [f for f in FIGURES if f in args.figures.split(",")]
    if not figures or not 0 < args.scale <= 1:
        p.error(f"expected --figures from {', '.join(FIGURES)} and 0 < --scale <= 1")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        with remote_servers(args.remote_ms, "tgrst", "bench_restore") as placements:
            results.update(restore_figures(root, args, figures, placements))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["run"] = {
        "scale": args.scale, "parallel": args.parallel, "rounds": args.rounds,
        "seconds": round(time.monotonic() - started, 1), "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "grid": grid_description(args.remote_ms),
    }
    print(json.dumps(results, indent=2))

if __name__ == "__main__":
    main(sys.argv[1:])
