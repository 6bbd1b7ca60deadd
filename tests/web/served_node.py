"""Start tests/web/serve_governor.py in a subprocess for an end-to-end test, and stop it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

REPO = Path(__file__).resolve().parents[2]


@attrs.frozen
class ServedNode:
    nodedir: Path
    url: str
    """The web root, ``http://127.0.0.1:PORT/``."""
    token: str

    @property
    def private_url(self) -> str:
        return f"{self.url}governor/{self.token}/"

    def public_json(self) -> Any:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url + "governor?t=json", timeout=10) as response:
            return json.load(response)

    def log_text(self) -> str:
        return (self.nodedir / "logs" / "twistd.log").read_text()


@contextlib.contextmanager
def served_node(nodedir: Path, seconds: float = 120.0) -> Iterator[ServedNode]:
    """A loopback server of the /governor pages over NODEDIR, stopped on exit."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.web.serve_governor", str(nodedir),
         "--seconds", str(seconds)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server listens, or exits
        if line.strip() != "ready":
            proc.wait(timeout=30)
            raise RuntimeError(f"the test server did not start: {proc.stderr.read()}")  # type: ignore[union-attr]
        url = (nodedir / "node.url").read_text().strip()
        token = (nodedir / "private" / "governor.token").read_text().strip()
        yield ServedNode(nodedir, url, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
