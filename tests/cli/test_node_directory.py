"""The command finds the node as ``tahoe`` does: NODEDIR, ``-d`` (before or after) or ~/.tahoe."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tahoe_governor.cli.main import parse_arguments
from tests.cli.stub_node import StubNode


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "node"], "node"),
        (["status", "-d", "node"], "node"),
        (["status", "--node-directory", "node"], "node"),
        (["-d", "node", "status"], "node"),
        (["--node-directory=node", "check"], "node"),
        (["run", "node"], "node"),
        (["pause", "node", "b1"], "node"),
        (["pause", "b1"], "~/.tahoe"),
        (["-d", "node", "start", "b1", "--force"], "node"),
        (["status"], "~/.tahoe"),
        (["check", "~/elsewhere"], "~/elsewhere"),
    ],
)
def test_where_the_node_directory_comes_from(home: Path, argv: list[str], expected: str) -> None:
    """Each habit of ``tahoe`` names the same directory; with none, Tahoe's default."""
    resolved = expected.replace("~", str(home)) if expected.startswith("~") else \
        str(home.parent / expected)
    assert parse_arguments(argv).nodedir == resolved


def test_a_job_name_is_not_taken_for_the_node_directory(home: Path) -> None:
    """``pause b1`` pauses job b1 of ~/.tahoe: the one word is the job, not NODEDIR."""
    args = parse_arguments(["pause", "b1"])
    assert (args.job, args.nodedir) == ("b1", str(home / ".tahoe"))


def test_node_directory_given_twice_is_refused(home: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """NODEDIR and -d together: exit status 2, naming both, as ``tahoe`` refuses it."""
    with pytest.raises(SystemExit) as exited:
        parse_arguments(["status", "-d", "one", "two"])
    assert exited.value.code == 2
    assert "given twice ('one' with -d and 'two' as NODEDIR)" in capsys.readouterr().err


LIMIT_WORDS = ["peer", "parents", "up", "100kbps"]


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["limit", *LIMIT_WORDS], "home/.tahoe"),
        (["limit", "{node}", *LIMIT_WORDS], "node"),
        (["limit", "-d", "{node}", *LIMIT_WORDS], "node"),
        (["limit", *LIMIT_WORDS, "-d", "{node}"], "node"),
        (["-d", "{node}", "limit", *LIMIT_WORDS], "node"),
    ],
)
def test_limit_finds_the_node_with_or_without_nodedir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], where: str) -> None:
    """``limit`` words start with peer/job/node, so NODEDIR before them is optional."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    node = StubNode(tmp_path / where)
    args = parse_arguments([word.format(node=node.nodedir) for word in argv])
    out, err = io.StringIO(), io.StringIO()
    assert args.func(args, out, err, node.http) == 0, err.getvalue()
    assert node.controls.calls == [("set_limit", "peer", "parents", "up", "100kbps")]
