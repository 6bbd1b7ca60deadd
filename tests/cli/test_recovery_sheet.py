"""tahoe-governor recovery-sheet: what it prints, that it is remembered, and its errors."""

from __future__ import annotations

import io
from pathlib import Path

from allmydata.uri import DirectoryURI, WriteableSSKFileURI

from tahoe_governor.cli.main import parse_arguments
from tahoe_governor.cli.recovery_sheet import run_recovery_sheet, stored_reminder
from tahoe_governor.policy.state_db import StateDatabase, state_db_path


def _dircap(seed: bytes) -> str:
    """A well-formed writeable directory cap (its bits decide nothing here)."""
    return DirectoryURI(WriteableSSKFileURI(seed * 16, seed * 32)).to_string().decode()


ROOT_CAP = _dircap(b"r")
CAP_TARGET = _dircap(b"m")
FURL = "pb://" + "t" * 32 + "@tcp:127.0.0.1:44190/" + "s" * 32
PRINTED = 1_796_000_000.0  # 2026-11-30 00:53 UTC

TAHOE_CFG = f"""[node]
nickname = alice-laptop
web.port = tcp:3456:interface=127.0.0.1
tub.port = disabled
tub.location = disabled

[client]
shares.needed = 2
shares.happy = 3
shares.total = 4

[storage]
enabled = false

[backups]
b1.source = /home/alice/Pictures
b1.target = backup:pictures/2026
b1.frequency = 1day
b1.keep = 7 daily
mail.source = /home/alice/Mail
mail.target = {CAP_TARGET}/mail
mail.frequency = 6h
"""


def _nodedir(tmp_path: Path, cfg: str = TAHOE_CFG) -> Path:
    nodedir = tmp_path / "node"
    (nodedir / "private").mkdir(parents=True)
    (nodedir / "private" / "aliases").write_text(f"backup: {ROOT_CAP}\n")
    (nodedir / "private" / "introducers.yaml").write_text(
        f"introducers:\n  default:\n    furl: {FURL}\n")
    (nodedir / "tahoe.cfg").write_text(cfg)
    return nodedir


def _sheet(nodedir: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_recovery_sheet(str(nodedir), out, err, PRINTED)
    return status, out.getvalue(), err.getvalue()


def test_sheet_holds_what_a_new_machine_needs(tmp_path: Path) -> None:
    """The introducer, each target's directory cap and path, the encoding, the versions,
    each job's [backups] lines and the three commands, in the node's own values."""
    status, out, err = _sheet(_nodedir(tmp_path))
    assert (status, err) == (0, "")
    assert "recovery sheet of node 'alice-laptop', printed 2026-11-30 00:53 UTC" in out
    assert f"introducer default: {FURL}" in out
    assert "shares.needed = 2, shares.happy = 3, shares.total = 4" in out
    assert "Tahoe-LAFS 1." in out and "tahoe-governor " in out
    assert f"directory cap of alias 'backup': {ROOT_CAP}" in out
    assert "path below it: pictures/2026" in out
    assert "b1.target = backup:pictures/2026" in out and "b1.keep = 7 daily" in out
    # A cap target gets an alias of the job's name on the new machine.
    assert f"directory cap of alias 'mail': {CAP_TARGET}" in out
    assert "mail.target = mail:mail" in out
    assert (f"1. tahoe create-client --introducer={FURL} --shares-needed=2 --shares-happy=3 "
            "--shares-total=4 NEWNODE") in out
    assert "2. tahoe-governor run NEWNODE   (with no [backups] yet" in out
    assert f"3. tahoe -d NEWNODE add-alias backup {ROOT_CAP}" in out
    assert f"3. tahoe -d NEWNODE add-alias mail {CAP_TARGET}" in out
    assert "4. tahoe-governor restore NEWNODE backup:pictures/2026 DEST   (job b1)" in out
    assert "4. tahoe-governor restore NEWNODE mail:mail DEST   (job mail)" in out
    assert "5. once the files are back: add the [backups] lines" in out
    assert "KEEP THIS SHEET PRIVATE" in out


def test_printing_is_remembered_and_ends_the_reminder(tmp_path: Path) -> None:
    """Before: the reminder; after: the state database holds the time and the jobs, and
    the reminder is gone until a job is added."""
    nodedir = _nodedir(tmp_path)
    assert "never been printed" in (stored_reminder(str(nodedir), ["b1", "mail"]) or "")
    assert _sheet(nodedir)[0] == 0
    with StateDatabase(state_db_path(str(nodedir))) as db:
        printed = db.recovery_sheet()
    assert printed is not None and (printed.printed, printed.jobs) == (PRINTED, ("b1", "mail"))
    assert stored_reminder(str(nodedir), ["b1", "mail"]) is None
    assert "job photos" in (stored_reminder(str(nodedir), ["b1", "mail", "photos"]) or "")


def test_bad_node_directory_prints_nothing_and_remembers_nothing(tmp_path: Path) -> None:
    """An alias missing from private/aliases: an error naming the job, no sheet, no record."""
    nodedir = _nodedir(tmp_path, TAHOE_CFG.replace("backup:pictures", "photos:pictures"))
    status, out, err = _sheet(nodedir)
    assert (status, out) == (1, "")
    assert "job b1" in err and "photos" in err
    assert not Path(state_db_path(str(nodedir))).exists()


def test_missing_node_directory(tmp_path: Path) -> None:
    """A directory that is not a node: the same words as run and check."""
    status, out, err = _sheet(tmp_path / "nowhere")
    assert (status, out) == (1, "")
    assert "expected a Tahoe-LAFS node directory" in err


def test_command_line() -> None:
    """recovery-sheet NODEDIR parses."""
    args = parse_arguments(["recovery-sheet", "node"])
    assert args.nodedir.endswith("/node") and args.nodedir.startswith("/")
    assert parse_arguments(["recovery-sheet"]).nodedir.endswith("/.tahoe")


def test_a_cap_target_never_takes_an_alias_in_use(tmp_path: Path) -> None:
    """A job named like an alias that names another directory gets an alias of its own."""
    cfg = TAHOE_CFG.replace("mail.", "backup.")
    status, out, _ = _sheet(_nodedir(tmp_path, cfg))
    assert status == 0
    assert f"add-alias backup {ROOT_CAP}" in out
    assert f"add-alias backup-target {CAP_TARGET}" in out
    assert "backup.target = backup-target:mail" in out
