"""tahoe-governor pause|resume|start|limit against a node's API in memory."""

from __future__ import annotations

import io

import pytest

from tahoe_governor.cli.controls import LimitRequest, UsageError, parse_limit_words
from tahoe_governor.cli.main import build_parser
from tests.cli.stub_node import NODE_URL, StubNode, refused
from tests.web.web_client import TOKEN


@pytest.fixture
def node(tmp_path):
    return StubNode(tmp_path / "node")


def _command(node, argv, http=None):
    """Run ``tahoe-governor ARGV`` with the node's in-memory HTTP function."""
    args = build_parser().parse_args(argv[:1] + [node.nodedir] + argv[1:])
    out, err = io.StringIO(), io.StringIO()
    status = args.func(args, out, err, http or node.http)
    return status, out.getvalue(), err.getvalue()


def test_pause_and_resume(node) -> None:
    """pause holds the job, resume lets it go; each prints what the node did."""
    status, out, err = _command(node, ["pause", "photos"])
    assert (status, err) == (0, "")
    assert out == "Paused job 'photos'.\nJob 'photos' is now paused.\n"
    assert node.controls.jobs["photos"].state == "paused"
    status, out, _ = _command(node, ["resume", "photos"])
    assert out == "Resumed job 'photos'.\nJob 'photos' is now running.\n"
    # A CSRF token was fetched from the private JSON before each POST.
    assert [m for m, _ in node.requests] == ["GET", "POST", "GET", "POST"]
    assert node.requests[1][1] == f"{NODE_URL}governor/{TOKEN}/pause"


def test_start_with_and_without_force(node) -> None:
    """start asks for a run inside the allowed times; --force outside them too."""
    status, out, _ = _command(node, ["start", "mail"])
    assert status == 0
    assert "inside its allowed times" in out and "is now waiting" in out
    status, out, _ = _command(node, ["start", "mail", "--force"])
    assert "forced" in out and "is now running" in out
    assert node.controls.calls == [("run_now", "mail", False), ("run_now", "mail", True)]


@pytest.mark.parametrize(
    ("words", "call", "shown"),
    [
        (["peer", "parents", "up", "100kbps"], ("set_limit", "peer", "parents", "up", "100kbps"),
         "Cap in force now: 12.5 kB/s."),
        (["peer", "kfyg4hbdk3mq5ga6xhzrtxs7o7ffzqjd", "down", "1MB/s"],
         ("set_limit", "peer", "kfyg4hbdk3mq5ga6xhzrtxs7o7ffzqjd", "down", "1MB/s"),
         "Cap in force now: 1 MB/s."),
        (["job", "photos", "up", "unlimited"], ("set_limit", "job", "photos", "up", "unlimited"),
         "Cap in force now: unlimited."),
        (["node", "up", "2Mbps"], ("set_limit", "node", "", "up", "2Mbps"),
         "Cap in force now: 250 kB/s."),
    ],
)
def test_limit(node, words, call, shown) -> None:
    """limit sets a peer's, a job's or the node's cap and shows the cap now in force."""
    status, out, err = _command(node, ["limit", *words])
    assert (status, err) == (0, "")
    assert node.controls.calls == [call]
    assert shown in out


def test_limit_clear(node) -> None:
    """RATE 'clear' drops the override: tahoe.cfg's cap is back."""
    _command(node, ["limit", "peer", "parents", "up", "100kbps"])
    status, out, _ = _command(node, ["limit", "peer", "parents", "up", "clear"])
    assert status == 0
    assert out == "Cleared the override of peer parents up.\nCap in force now: 25 kB/s.\n"
    assert node.controls.overrides == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pause", "videos"], "tahoe-governor pause: unknown job 'videos': expected one of "
                              "photos, mail"),
        (["start", "videos", "--force"], "unknown job 'videos'"),
        (["limit", "peer", "neighbour", "up", "1MB/s"], "unknown peer 'neighbour'"),
        (["limit", "job", "videos", "up", "1MB/s"], "unknown job 'videos'"),
        (["limit", "node", "up", "clear"], "tahoe-governor limit: no override of node up"),
    ],
)
def test_refusals_by_the_node(node, argv, message) -> None:
    """The node's reason is printed as it gave it; exit status 1; nothing changes."""
    status, out, err = _command(node, argv)
    assert status == 1 and out == ""
    assert message in err
    assert node.controls.calls == []


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["peer", "parents", "up", "fast"], "rate 'fast': expected a rate above zero"),
        (["peer", "parents", "up", "200 kbit"], "expected a rate above zero"),
        (["peer", "parents", "up", "0kbps"], "expected a rate above zero"),
        (["peer", "parents", "sideways", "1MB/s"], "expected the direction up or down"),
        (["job", "photos", "down", "1MB/s"], "a job's cap is on its uploads"),
        (["node", "parents", "up", "1MB/s"], "expected 'node (up|down) RATE'"),
        (["peer", "up", "1MB/s"], "expected 'peer NAME (up|down) RATE'"),
        (["planet", "up", "1MB/s"], "expected peer, job or node after NODEDIR, got 'planet'"),
    ],
)
def test_malformed_limit_is_refused_before_asking_the_node(node, words, message) -> None:
    """A malformed limit command is exit status 2 with the expected shape; no request made."""
    status, out, err = _command(node, ["limit", *words])
    assert status == 2 and out == ""
    assert message in err
    assert node.requests == []


def test_node_not_running(node) -> None:
    """A stopped node: one line saying so and how to start it; the token is not shown."""
    status, _, err = _command(node, ["pause", "photos"], http=refused)
    assert status == 1
    assert "cannot reach the node at http://127.0.0.1:3456/ (Connection refused)" in err
    assert TOKEN not in err


def test_missing_or_stale_token(tmp_path) -> None:
    """No token file, or one the node does not know: each says what to do."""
    node = StubNode(tmp_path / "a", token=None)
    status, _, err = _command(node, ["pause", "photos"])
    assert status == 1 and "governor.token does not exist" in err
    stale = "b" * 26
    node = StubNode(tmp_path / "b", token=stale)
    status, _, err = _command(node, ["pause", "photos"])
    assert status == 1
    assert "does not know the token in" in err and "restart it" in err
    assert stale not in err and TOKEN not in err
    assert node.controls.calls == []


def test_parse_limit_words() -> None:
    """The limit grammar, rows with a reason."""
    assert parse_limit_words(["node", "down", "60%"]) == LimitRequest("node", "", "down", "60%")
    assert parse_limit_words(["job", "b1", "up", "clear"]) == LimitRequest("job", "b1", "up", None)
    with pytest.raises(UsageError):
        parse_limit_words([])


def test_reload_prints_what_changed_or_why_not(node) -> None:
    """reload POSTs to the node's reload control and prints its answer; a refused file
    is exit status 1 with the node's reason (check's words)."""
    status, out, err = _command(node, ["reload"])
    assert (status, err) == (0, "")
    assert out == "Reloaded tahoe.cfg: nothing changed in [backups] or [bandwidth].\n"
    assert node.requests[-1] == ("POST", f"{NODE_URL}governor/{TOKEN}/reload")
    node.controls.reload_refusal = "/n/tahoe.cfg: [bandwidth] limit.up: bad; nothing was changed"
    status, out, err = _command(node, ["reload"])
    assert (status, out) == (1, "")
    assert "limit.up: bad; nothing was changed" in err
