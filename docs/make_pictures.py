"""Take the docs' status-page pictures from a real run: the demo, in headless Chromium.

Run from the repository root, with the package installed, Debian's ``chromium`` and
``chromium-driver``, and selenium (the ``test`` extra):

    python docs/make_pictures.py

It starts ``tahoe-governor demo --keep`` (a throwaway local grid on 127.0.0.1, a real
governed backup capped towards ``parents-dsl``), waits until the first run is well under
way, saves the public page as ``docs/_static/status-page.png``, lets the demo finish
both runs, saves the private page (its folded sections open: last runs, settings) as
``docs/_static/private-page.png`` (1200 px wide, each the whole page), and stops the
demo with Ctrl-C, which removes the grid. It takes about six minutes. Nothing of this machine is in
the pictures: the caps and paths on the private page are the demo grid's, gone when the
script ends. The demo's own output goes to standard error as it comes.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "docs" / "_static"
sys.path.insert(0, str(REPO))  # the browser test's Chromium helper, tests/web/chromium.py
from tests.web.chromium import PACKAGES, PROGRAMS, chromium  # noqa: E402

WIDTH = 1200
PAGE_LINE = re.compile(r"^\s+(public|private) page\s+(http://\S+)$")
WATCH_TIMEOUT = 300.0
"""Seconds the demo may take to reach each stage before the script gives up."""


class DemoOutput:
    """The demo's output, echoed to standard error, with the page addresses it printed."""

    def __init__(self, stream: Any) -> None:
        self.pages: dict[str, str] = {}
        self.lines: list[str] = []
        self.ended = threading.Event()
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            sys.stderr.write(line)
            with self._changed:
                self.lines.append(line)
                match = PAGE_LINE.match(line.rstrip("\n"))
                if match:
                    self.pages.setdefault(match.group(1), match.group(2))
                self._changed.notify_all()
        self.ended.set()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, condition: Any, what: str) -> None:
        """Wait until ``condition()`` holds; fail naming ``what`` if the demo ends first."""
        deadline = time.monotonic() + WATCH_TIMEOUT
        with self._changed:
            while not condition():
                if self.ended.is_set() or time.monotonic() > deadline:
                    raise SystemExit(f"make_pictures: the demo ended or stalled before {what}")
                self._changed.wait(1.0)


def public_json(public_url: str) -> Any:
    """The public page's snapshot as JSON (no proxy: the demo is on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(public_url + "?t=json", timeout=10) as response:
        return json.load(response)


def wait_until_run_is_under_way(public_url: str, share: float) -> None:
    """Until the first job runs with ``share`` of its estimated bytes done, so the page
    shows a progress bar, a rate on its cap and a chart with some history."""
    deadline = time.monotonic() + WATCH_TIMEOUT
    while time.monotonic() < deadline:
        for job in public_json(public_url)["jobs"]:
            progress = job.get("progress") or {}
            estimated = progress.get("estimated_bytes")
            if job["state"] == "running" and estimated and \
                    progress["bytes_done"] >= share * estimated:
                return
        time.sleep(0.5)
    raise SystemExit("make_pictures: the demo's first run did not get under way")


def save_whole_page(driver: Any, url: str, path: Path, open_details: bool = False) -> None:
    """``url`` as a PNG ``WIDTH`` pixels wide and as tall as the page (``open_details``:
    with every folded section unfolded, as a reader who clicks them sees it)."""
    driver.get(url)
    time.sleep(1.0)  # the charts are drawn by the page's script after load
    if open_details:
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WIDTH, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"make_pictures: saved {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STATIC, help="folder for the PNGs")
    parser.add_argument("--share", type=float, default=0.6,
                        help="share of the first run's bytes done before the public picture")
    parser.add_argument("--run-seconds", type=int, default=240,
                        help="the demo's --run-seconds: a longer run fills more of the charts")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    for program, package in zip(PROGRAMS, PACKAGES, strict=True):
        if not os.access(program, os.X_OK):
            raise SystemExit(f"make_pictures: {program} is missing: apt-get install {package}")
    demo = subprocess.Popen(
        [sys.executable, "-m", "tahoe_governor.cli.main", "demo", "--keep",
         "--run-seconds", str(args.run_seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    output = DemoOutput(demo.stdout)
    try:
        output.wait_for(lambda: {"public", "private"} <= set(output.pages),
                        "printing the page addresses")
        wait_until_run_is_under_way(output.pages["public"], args.share)
        with chromium(WIDTH, 1000) as driver:
            save_whole_page(driver, output.pages["public"], args.out / "status-page.png")
            output.wait_for(lambda: any("Press Ctrl-C" in line for line in output.lines),
                            "its summary")
            save_whole_page(driver, output.pages["private"], args.out / "private-page.png",
                            open_details=True)
        passed = not any("[FAIL]" in line for line in output.lines)
    finally:
        if demo.poll() is None:
            # The demo's own clean-up (node, grid, folder), as Ctrl-C gives; SIGTERM, not
            # SIGINT, which a shell ignores for a command it runs in the background.
            demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=120)
        output.ended.wait(10)
    if not passed:
        print("make_pictures: a check of the demo failed; see its summary above",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
