"""The command against a real loopback web server of the /governor pages (Tahoe's site class)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.web.served_node import REPO, served_node


def _governor(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tahoe_governor.cli.main", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.e2e
def test_every_command_against_a_served_node(tmp_path) -> None:
    """status, --json, --private-url, pause, start, limit, clear, resume and a refusal, over
    real HTTP; then the node's log holds the controls but never the token."""
    nodedir = tmp_path / "node"
    with served_node(nodedir) as node:
        nd = str(nodedir)
        table = _governor("status", nd)
        assert table.returncode == 0, table.stderr
        assert "photos  running" in table.stdout and "parents" in table.stdout

        assert _governor("status", nd, "--private-url").stdout == node.private_url + "\n"

        paused = _governor("pause", nd, "photos")
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout == "Paused job 'photos'.\nJob 'photos' is now paused.\n"
        data = json.loads(_governor("status", nd, "--json").stdout)
        assert {j["name"]: j["state"] for j in data["jobs"]} == {
            "photos": "paused", "mail": "waiting"}

        assert "is now running" in _governor("start", nd, "mail", "--force").stdout
        limited = _governor("limit", nd, "peer", "parents", "up", "100kbps")
        assert limited.stdout.endswith("Cap in force now: 12.5 kB/s.\n"), limited.stderr
        cleared = _governor("limit", nd, "peer", "parents", "up", "clear")
        assert cleared.stdout.endswith("Cap in force now: 25 kB/s.\n"), cleared.stderr
        assert "is now running" in _governor("resume", nd, "photos").stdout

        refused = _governor("pause", nd, "videos")
        assert refused.returncode == 1
        assert "unknown job 'videos': expected one of photos, mail" in refused.stderr

        assert node.public_json()["jobs"][0]["state"] == "running"
        log_text = node.log_text()
    assert "POST /governor/[CENSORED]/pause 200" in log_text
    assert "GET /governor?t=json 200" in log_text
    assert "tahoe-governor: Paused job 'photos'." in log_text
    assert node.token not in log_text
    for result in (table, paused, limited, cleared, refused):
        assert node.token not in result.stdout + result.stderr

    stopped = _governor("status", nd)
    assert stopped.returncode == 1
    assert "cannot reach the node" in stopped.stderr
