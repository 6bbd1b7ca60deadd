"""tahoe-governor status: the table, --json, --watch, --private-url, and its errors."""

from __future__ import annotations

import io
import json

import pytest

from tahoe_governor.cli.main import build_parser
from tahoe_governor.cli.status import CLEAR_SCREEN, progress_bar, run_status
from tests.cli.stub_node import NODE_URL, StubNode, refused
from tests.web.controls_double import SECRETS
from tests.web.web_client import TOKEN


@pytest.fixture
def node(tmp_path):
    return StubNode(tmp_path / "node")


def _run(node, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("http", node.http)
    status = run_status(node.nodedir, out, err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_table_of_jobs_and_peers(node) -> None:
    """The table shows each job's state, counts, progress, rate/cap, ETA and times, and peers."""
    status, out, err = _run(node)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "alice-laptop: 2 job(s), 2 peer(s)"
    photos = next(line for line in lines if line.startswith("photos"))
    assert photos.split("  ")[0] == "photos"
    for part in ("running", "1200/300/850/3/1", "2.9 GB of 5 GB", "24 kB/s / 25 kB/s",
                 "7 h 17 min", "6 d ago", "running now"):
        assert part in photos, part
    mail = next(line for line in lines if line.startswith("mail"))
    for part in ("waiting", "-/0/0/0/0", "0 B/s / unlimited", "never", "in 5 h"):
        assert part in mail, part
    parents = next(line for line in lines if line.startswith("parents"))
    assert "24.5 kB/s / 25 kB/s" in parents and "800 B/s / unlimited" in parents
    assert "Node cap: up 75 kB/s, down unlimited" in out
    assert "[" not in out  # bars only with --watch
    for secret in SECRETS + (TOKEN,):
        assert secret not in out
    assert node.requests == [("GET", NODE_URL + "governor?t=json")]


def test_json_for_scripts(node) -> None:
    """--json prints the public snapshot as the page's JSON gives it."""
    status, out, _ = _run(node, as_json=True)
    assert status == 0
    data = json.loads(out)
    assert [j["state"] for j in data["jobs"]] == ["running", "waiting"]
    assert "source" not in data["jobs"][0]


def test_watch_redraws_with_bars_until_interrupted(node) -> None:
    """--watch redraws in place every interval with a progress bar; Ctrl-C ends it cleanly."""
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        node.controls.pause("photos")  # the next redraw shows the change
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    status, out, _ = _run(node, watch=True, interval=3.0, sleep=sleep)
    assert status == 0
    frames = out.split(CLEAR_SCREEN)[1:]
    assert len(frames) == 2
    assert sleeps == [3.0, 3.0]
    assert "[#################.............]  58.0%" in frames[0]
    assert "Refreshing every 3 s; Ctrl-C to stop." in frames[0]
    assert "photos  running" in frames[0] and "photos  paused" in frames[1]


def test_watch_keeps_trying_while_the_node_is_away(node) -> None:
    """A node that stops answering shows an error in the frame, not a crash."""
    status, out, _ = _run(node, watch=True, rounds=2, http=refused, sleep=lambda s: None)
    assert status == 0
    assert out.count("Connection refused") == 2 and "(retrying)" in out


def test_private_url_is_printed_only_when_asked(node) -> None:
    """--private-url prints the address with the token on stdout, a warning on stderr."""
    status, out, err = _run(node, private_url=True)
    assert status == 0
    assert out == f"{NODE_URL}governor/{TOKEN}/\n"
    assert "Keep this address to yourself" in err
    assert node.requests == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no node.url", "node.url does not exist: the node is not running"),
        ("refused", "cannot reach the node at http://127.0.0.1:3456/ (Connection refused)"),
        ("bad node.url", "expected the node's web address (http://...), got 'garbage'"),
        ("no nodedir", "no such node directory"),
        ("plain tahoe", "governor is not there (404): is the node run by 'tahoe-governor run'"),
        ("broken", "failed to answer (HTTP 500): see its log, "),
    ],
)
def test_errors_say_what_to_do(tmp_path, setup, message) -> None:
    """Each failure is one line naming the problem and the way out; exit status 1."""
    node = StubNode(tmp_path / "node", governed=setup != "plain tahoe")
    http = node.http
    nodedir = node.nodedir
    if setup == "no node.url":
        (tmp_path / "node" / "node.url").unlink()
    elif setup == "refused":
        http = refused
    elif setup == "bad node.url":
        (tmp_path / "node" / "node.url").write_text("garbage\n")
    elif setup == "broken":
        def broken_status():
            raise RuntimeError("the status could not be read")

        node.controls.status = broken_status
    elif setup == "no nodedir":
        nodedir = str(tmp_path / "elsewhere")
    out, err = io.StringIO(), io.StringIO()
    assert run_status(nodedir, out, err, http=http) == 1
    assert out.getvalue() == ""
    assert message in err.getvalue()
    assert TOKEN not in err.getvalue()


def test_private_url_needs_the_token_file(tmp_path) -> None:
    """Without the token file, --private-url says where it should be and who makes it."""
    node = StubNode(tmp_path / "node", token=None)
    status, out, err = _run(node, private_url=True)
    assert status == 1 and out == ""
    assert "private/governor.token does not exist: the governed node creates it" in err


def test_command_line() -> None:
    """The options parse; --json, --watch and --private-url exclude each other."""
    args = build_parser().parse_args(["status", "nd", "--watch", "--interval", "0.5"])
    assert (args.watch, args.interval, args.json) == (True, 0.5, False)
    for bad in (["status", "nd", "--json", "--watch"], ["status", "nd", "--interval", "0"],
                ["status", "nd", "--interval", "soon"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_progress_bar() -> None:
    """Filled in proportion; unknown totals are a question mark."""
    assert progress_bar(0.5, width=10) == "[#####.....]  50.0%"
    assert progress_bar(1.0, width=4) == "[####] 100.0%"
    assert progress_bar(None, width=3) == "[ ? ]"


def test_a_jobs_failure_is_printed_under_its_row() -> None:
    """A failed job's public reason and retry time follow its row, and a done
    job whose record waits in memory says so too; a job with no failure adds
    no line."""
    import attrs

    from tahoe_governor.cli.status import status_lines
    from tahoe_governor.status import public_dict
    from tests.web.status_examples import example_status

    status = example_status()
    failed = attrs.evolve(status.jobs[0], state="failed", progress=None,
                          last_failure="the state database could not be written (disk full)",
                          retry_at=status.at + 120)
    waiting = ("the state database could not be written (disk full); the end of 1 run is "
               "kept in memory and written when the state database can be written again")
    done = attrs.evolve(status.jobs[1], state="done", last_failure=waiting, retry_at=None)
    lines = status_lines(public_dict(attrs.evolve(status, jobs=(failed, done))))
    assert (f"  {failed.name}: the state database could not be written (disk full); "
            "retry in 2 min") in lines
    assert f"  {done.name}: {waiting}" in lines
    assert not any(line.startswith("  ") and "could not" in line
                   for line in status_lines(public_dict(status)))
