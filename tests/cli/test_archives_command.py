"""tahoe-governor archives (listing, --json, --keep-preview, errors) and status --history."""

from __future__ import annotations

import io
import json

import pytest

from tahoe_governor.cli.archives import NOT_OURS, run_archives
from tahoe_governor.cli.main import parse_arguments
from tahoe_governor.cli.status import run_status
from tahoe_governor.policy.state_db import StateDatabase, state_db_path
from tests.cli.stub_node import NODE_URL, StubNode, refused
from tests.web.controls_double import PHOTOS_RUN, SECRETS
from tests.web.web_client import TOKEN


@pytest.fixture
def node(tmp_path):
    return StubNode(tmp_path / "node")


def _archives(node, job="photos", **kwargs):
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("http", node.http)
    status = run_archives(node.nodedir, job, out, err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_listing_newest_first_with_runs(node) -> None:
    """Each archive with its run's files, bytes, duration and outcome; one the node did not
    make says so; the list is read from the private API."""
    status, out, err = _archives(node)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "photos: 2 archive(s), newest first"
    newest = next(line for line in lines if line.startswith("2026-11-12_01:46:40Z"))
    for part in ("Latest", str(PHOTOS_RUN.files_seen), "1.5 GB", "1 h", "completed"):
        assert part in newest, part
    older = next(line for line in lines if line.startswith("2026-11-01_10:00:00Z"))
    assert NOT_OURS in older
    assert lines.index(newest) < lines.index(older)
    assert "keep" not in out  # the rule only with --keep-preview
    assert node.requests == [("GET", f"{NODE_URL}governor/{TOKEN}/archives?job=photos")]


def test_keep_preview_says_what_and_why(node) -> None:
    """--keep-preview marks each archive keep or forget with the rule's reasons."""
    status, out, _ = _archives(node, keep_preview=True)
    assert status == 0
    assert "photos.keep = 1 last keeps 1 and forgets 1 after the next completed run" in out
    lines = out.splitlines()
    newest = lines.index(next(line for line in lines if line.startswith("2026-11-12")))
    assert lines[newest].rstrip().endswith("keep")
    assert lines[newest + 1].strip() == "last: one of the 1 newest"
    assert "no kind of 1 last keeps it" in out and "forget" in out


def test_keep_preview_without_a_rule(node) -> None:
    """A job without bN.keep keeps every archive, and the preview says so."""
    status, out, _ = _archives(node, job="mail", keep_preview=True)
    assert status == 0 and "No mail.keep in tahoe.cfg: every archive is kept." in out
    assert "forget" not in out


def test_json_is_the_nodes_listing(node) -> None:
    """--json prints the node's listing as it is."""
    status, out, _ = _archives(node, as_json=True)
    data = json.loads(out)
    assert status == 0 and [a["name"] for a in data["archives"]] == [
        "2026-11-12_01:46:40Z", "2026-11-01_10:00:00Z"]


def test_unknown_job_lists_the_known_ones(node) -> None:
    """An unknown job is refused in the words of every other command."""
    status, out, err = _archives(node, job="photoz")
    assert (status, out) == (1, "")
    assert err == ("tahoe-governor archives: unknown job 'photoz': expected one of "
                   "photos, mail\n")


def test_unreadable_grid_and_stopped_node(node) -> None:
    """The grid's failure is the node's words (no cap); a stopped node says how to start it."""
    node.controls.grid_error = RuntimeError("URI:DIR2:secret")
    status, _, err = _archives(node)
    assert status == 1 and "could not be read from the grid (RuntimeError)" in err
    assert "URI:" not in err
    status, _, err = _archives(node, http=refused)
    assert status == 1 and "is it running?" in err


def test_command_line() -> None:
    """The subcommand parses NODEDIR, JOB and one of --json / --keep-preview."""
    args = parse_arguments(["archives", "node", "b1", "--keep-preview"])
    assert (args.job, args.keep_preview, args.json) == ("b1", True, False)
    assert args.nodedir.endswith("/node")
    assert parse_arguments(["-d", "elsewhere", "archives", "b1"]).nodedir.endswith("/elsewhere")
    with pytest.raises(SystemExit):
        parse_arguments(["archives", "node", "b1", "--json", "--keep-preview"])


def _status(node, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    status = run_status(node.nodedir, out, err, http=node.http, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_status_history_prints_the_last_runs(node) -> None:
    """status --history adds each job's last runs and their outcome, from the private API."""
    status, out, _ = _status(node, history=True)
    assert status == 0
    assert "Last runs of photos" in out and "Last runs of mail: none recorded yet" in out
    run_line = next(line for line in out.splitlines() if "completed" in line)
    for part in (str(PHOTOS_RUN.files_seen), "1.5 GB", "1 h", PHOTOS_RUN.detail):
        assert part in run_line, part
    assert node.requests[0][1].startswith(f"{NODE_URL}governor/{TOKEN}/")


def test_status_reminds_until_the_sheet_is_printed(node) -> None:
    """status ends with the reminder while the state database says the recovery sheet was
    never printed (or not since a job was added); then it is gone; the public snapshot it
    read never carries it."""
    _, out, _ = _status(node)
    assert "Warning: The recovery sheet has never been printed" in out
    with StateDatabase(state_db_path(node.nodedir)) as db:
        db.record_recovery_sheet(1.0, ("photos",))
    _, out, _ = _status(node)
    assert "printed before job mail existed" in out
    with StateDatabase(state_db_path(node.nodedir)) as db:
        db.record_recovery_sheet(2.0, ("photos", "mail"))
    _, out, _ = _status(node)
    assert "recovery sheet" not in out
    _, public, _ = _status(node, as_json=True)
    assert "recovery" not in public
    for secret in SECRETS:
        assert secret not in public
