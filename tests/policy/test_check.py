"""``tahoe-governor check NODEDIR``: the report, the errors, the exit status; and once
on a node directory made by ``tahoe create-client``."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.cli.check import run_check
from tahoe_governor.cli.main import main
from tahoe_governor.policy.overrides import LimitKey
from tahoe_governor.policy.state_db import StateDatabase, state_db_path
from tahoe_governor.throttle.testing import FakeCounters

AMS = ZoneInfo("Europe/Amsterdam")
CONFIGS = Path(__file__).parent / "configs"
# Thursday 2026-11-26 09:30 in Amsterdam: a weekday office hour.
THURSDAY_MORNING = datetime.fromisoformat("2026-11-26T09:30:00+01:00").timestamp()
DIRCAP = "URI:DIR2:" + "a" * 26 + ":" + "b" * 52


def _nodedir(tmp_path: Path, cfg: str, aliases: str = f"backup: {DIRCAP}\n") -> Path:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "aliases").write_text(aliases)
    (tmp_path / "tahoe.cfg").write_text(cfg)
    return tmp_path


def _check(
    nodedir: Path, now: float = THURSDAY_MORNING, counters: FakeCounters | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_check(str(nodedir), now, AMS, out, err, counters)
    return status, out.getvalue(), err.getvalue()


def test_check_refuses_an_upload_cap_below_the_segment_floor(tmp_path: Path) -> None:
    """A peer cap too low for one segment's block to reach the server within its idle
    limit makes check fail, naming the floor computed from [client] shares.needed."""
    nodedir = _nodedir(tmp_path, "[bandwidth]\npeer.parents.up = 200bps\n")
    status, out, err = _check(nodedir)
    assert (status, out) == (1, "")
    assert (
        "[bandwidth] peer.parents.up = '200bps': expected at least 1865 bps (233.1 B/s): below "
        "it one server's block of a segment (349526 bytes at 3-of-10) cannot reach the storage "
        "servers within 25 minutes, and their 30-minute idle limit aborts every upload"
    ) in err


def test_story_report(tmp_path: Path) -> None:
    """The story's policy prints each job with next start, caps and budgets, and each limit."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "story.cfg").read_text())
    status, out, err = _check(nodedir)
    assert (status, err) == (0, "")
    assert "  b1\n" in out
    assert "source:          /Volumes/BackupDrive/Pictures  (warning: not a directory now)" in out
    assert "target:          backup:pictures" in out
    assert "frequency:       1week since the last completed run (last completed: never)" in out
    assert "allowed times:   2200-2400,0000-0800" in out
    assert "now:             due, waiting for its allowed times" in out
    assert "next start:      Thu 2026-11-26 22:00:00 CET" in out
    assert "upload cap:      12.5 kB/s (100 kbps)" in out
    assert "cpu budget:      25% of one core" in out
    assert (
        "node limit up:   12.5 kB/s (100 kbps)  [schedule.up (Mon-Fri 0800-1800) = 100kbps]"
        in out
    )
    assert "node limit down: unlimited  [limit.down = unlimited]" in out
    assert "parents (nickname; resolved when the peer is known" in out
    assert "Next change of any limit: Thu 2026-11-26 18:00:00 CET" in out


def test_idle_budget_and_interface(tmp_path: Path) -> None:
    """check shows each job's idle CPU budget when it differs, and the configured interface,
    with a warning when this machine has no such interface."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "budgets.cfg").read_text())
    counters = FakeCounters(interfaces={"lo": ["127.0.0.1"], "eth0": ["192.0.2.10"]})
    status, out, err = _check(nodedir, counters=counters)
    assert (status, err) == (0, "")
    assert "cpu budget:      25% of one core; 75% while the machine is idle\n" in out
    assert "cpu budget:      10% of one core; no budget while the machine is idle\n" in out
    assert "cpu budget:      50% of one core\n" in out
    assert "cpu budget:      none\n" in out
    assert "  interface:       eth0 [interface]\n" in out
    status, out, _err = _check(nodedir, counters=FakeCounters(interfaces={"lo": ["::1"]}))
    assert status == 0
    assert (
        "  interface:       eth0 [interface]  (warning: [bandwidth] interface: "
        "no network interface 'eth0'; the interfaces are: lo)\n"
    ) in out
    (tmp_path / "story").mkdir()
    story = _nodedir(tmp_path / "story", (CONFIGS / "valid" / "story.cfg").read_text())
    _status, out, _err = _check(story, counters=counters)
    assert "  interface:       chosen by the routes to the storage servers\n" in out


def test_every_error_and_exit_status(tmp_path: Path) -> None:
    """An invalid tahoe.cfg prints every problem and exits 1."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "invalid" / "bad_values.cfg").read_text())
    status, out, err = _check(nodedir)
    assert (status, out) == (1, "")
    assert "13 configuration problems:" in err
    assert "[backups] b1.frequency = 'weekly': expected a duration" in err
    assert ("[backups] b1.keep = '7 days, 4 weekly': expected comma-separated 'N period'"
            in err)


def test_unknown_alias_is_an_error(tmp_path: Path) -> None:
    """A target naming an alias that private/aliases lacks fails the check."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "story.cfg").read_text(), aliases="")
    status, _out, err = _check(nodedir)
    assert status == 1 and "[backups] b1.target = 'backup:pictures'" in err
    assert "tahoe create-alias" in err


def test_state_database_shows_runs_overrides_and_estimates(tmp_path: Path) -> None:
    """Completed runs, overrides and the persisted capacity estimate appear in the report,
    and the report marks an override as replacing the tahoe.cfg value."""
    cfg = (CONFIGS / "valid" / "story.cfg").read_text().replace(
        "capacity.down = 8Mbps", "capacity.down = auto"
    ).replace("limit.down = unlimited", "limit.down = 50%")
    nodedir = _nodedir(tmp_path, cfg)
    with StateDatabase(state_db_path(str(nodedir))) as db:
        run = db.start_run("b1", THURSDAY_MORNING - 7200)
        db.finish_run(run, THURSDAY_MORNING - 3600, "completed")
        db.set_limit_override(LimitKey("node", "", "up"), "1MB/s", THURSDAY_MORNING)
        db.put_estimate("capacity.down", 1_000_000.0, THURSDAY_MORNING)
    status, out, _err = _check(nodedir)
    assert status == 0
    assert "last completed: Thu 2026-11-26 08:30:00 CET" in out
    assert "not due until Thu 2026-12-03 08:30:00 CET" in out
    assert "next start:      Thu 2026-12-03 22:00:00 CET" in out
    assert "[busy.up = 80%]  (live override 1MB/s replaces tahoe.cfg 100kbps)" in out
    assert "capacity down:   auto: estimated 1 MB/s (8 Mbps)" in out
    with StateDatabase(state_db_path(str(nodedir))) as db:
        db.set_paused("b1", True, THURSDAY_MORNING)
    _status, out, _err = _check(nodedir)
    assert "now:             paused by hand (resume to run)" in out
    assert "next start:      none while paused" in out
    assert "node limit down: 500 kB/s (4 Mbps)  [limit.down = 50%]" in out


def test_job_settings_set_live_are_applied_and_marked(tmp_path: Path) -> None:
    """A frequency and allowed times set from the private page are what check evaluates,
    each marked as replacing tahoe.cfg's."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "story.cfg").read_text())
    with StateDatabase(state_db_path(str(nodedir))) as db:
        run = db.start_run("b1", THURSDAY_MORNING - 7200)
        db.finish_run(run, THURSDAY_MORNING - 3600, "completed")
        db.set_job_setting("b1", "frequency", "1day", THURSDAY_MORNING)
        db.set_job_setting("b1", "allowed_times", "0100-0300", THURSDAY_MORNING)
    status, out, _err = _check(nodedir)
    assert status == 0
    assert "(live override 1day replaces tahoe.cfg's)" in out
    assert "allowed times:   0100-0300  (live override 0100-0300 replaces tahoe.cfg's)" in out
    assert "not due until Fri 2026-11-27 08:30:00 CET" in out
    assert "next start:      Sat 2026-11-28 01:00:00 CET" in out


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The subcommand is registered; --now and --timezone replace the clock and zone."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "minimal.cfg").read_text(),
                       aliases="")
    (nodedir / "private" / "root_dir.cap").write_text(DIRCAP)
    status = main(["check", str(nodedir), "--now", "2026-11-26T09:30+01:00",
                   "--timezone", "America/New_York"])
    out = capsys.readouterr().out
    assert status == 0
    assert "Evaluated at Thu 2026-11-26 03:30:00 EST (zone America/New_York)" in out
    assert "now:             may start now" in out
    with pytest.raises(SystemExit):
        main(["check", str(nodedir), "--now", "yesterday"])


@pytest.mark.e2e
def test_check_on_a_created_client(tmp_path: Path) -> None:
    """On a node directory made by `tahoe create-client`, check reports the appended policy."""
    nodedir = tmp_path / "node"
    subprocess.run(
        [sys.executable, "-c", "from allmydata.scripts.runner import run; run()",
         "create-client", "--nickname=laptop", str(nodedir)],
        check=True, capture_output=True, timeout=120,
    )
    plain = subprocess.run(
        [sys.executable, "-m", "tahoe_governor.cli.main", "check", str(nodedir)],
        capture_output=True, text=True, timeout=120,
    )
    assert plain.returncode == 0, plain.stderr
    assert "Jobs: none" in plain.stdout and "node limit up:   unlimited" in plain.stdout
    story = (CONFIGS / "valid" / "story.cfg").read_text()
    governed = story[story.index("[backups]"):]
    with open(nodedir / "tahoe.cfg", "a", encoding="utf-8") as cfg:
        cfg.write("\n" + governed)
    (nodedir / "private" / "aliases").write_text(f"backup: {DIRCAP}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tahoe_governor.cli.main", "check", str(nodedir),
         "--now", "2026-11-26T23:00+01:00", "--timezone", "Europe/Amsterdam"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "now:             may start now, until Fri 2026-11-27 08:00:00 CET" in result.stdout
    assert "upload cap:      25 kB/s (200 kbps)  [b1.bandwidth = 200kbps]" in result.stdout
    with open(nodedir / "tahoe.cfg", "a", encoding="utf-8") as cfg:
        cfg.write("b1.cpu = lots\n")
    failed = subprocess.run(
        [sys.executable, "-m", "tahoe_governor.cli.main", "check", str(nodedir)],
        capture_output=True, text=True, timeout=120,
    )
    assert failed.returncode == 1
    assert "[bandwidth] b1.cpu = 'lots': expected one of" in failed.stderr


def test_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zone of allowed times is $TZ when it names a zone, else the system's."""
    from tahoe_governor.policy.local_zone import local_zone

    monkeypatch.setenv("TZ", ":America/New_York")
    assert local_zone().key == "America/New_York"
    monkeypatch.setenv("TZ", "Not/AZone")
    assert isinstance(local_zone(), ZoneInfo)
    monkeypatch.delenv("TZ")
    assert isinstance(local_zone(), ZoneInfo)


def test_a_running_node_tells_check_which_server_a_nickname_names(tmp_path: Path) -> None:
    """With the node running, a nickname cap resolves to the TubID the node knows; with
    it stopped, check says nicknames resolve through private/servers.yaml only."""
    from tests.cli.stub_node import StubNode, refused
    from tests.web.controls_double import PARENTS_TUBID

    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "story.cfg").read_text())
    node = StubNode(nodedir)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(str(nodedir), THURSDAY_MORNING, AMS, out, err, FakeCounters(),
                     http=node.http) == 0, err.getvalue()
    assert "Peers (1; servers known to the running node and private/servers.yaml)" in \
        out.getvalue()
    assert f"parents (nickname; TubID {PARENTS_TUBID})" in out.getvalue()
    out = io.StringIO()
    run_check(str(nodedir), THURSDAY_MORNING, AMS, out, err, FakeCounters(), http=refused)
    assert "the node is not running: nicknames resolve through private/servers.yaml" in \
        out.getvalue()
    assert "parents (nickname; resolved when the peer is known" in out.getvalue()


def test_retention_preview_of_recorded_archives(tmp_path: Path) -> None:
    """check shows each job's keep rule and what it would forget of the archives its
    completed runs recorded (here five daily runs under '3 last': the two oldest)."""
    cfg = (CONFIGS / "valid" / "story.cfg").read_text().replace(
        "b1.keep = 7 daily, 4 weekly, 12 monthly, 3 yearly", "b1.keep = 3 last")
    nodedir = _nodedir(tmp_path, cfg)
    _status, out, _err = _check(nodedir)
    assert "keep:            3 last; Latest's archive always" in out
    assert "(no archive recorded here yet to preview)" in out
    names = []
    with StateDatabase(state_db_path(str(nodedir))) as db:
        for day in range(5):
            ended = THURSDAY_MORNING - (5 - day) * 86400
            names.append(datetime.fromtimestamp(ended, ZoneInfo("UTC"))
                         .strftime("%Y-%m-%d_%H:%M:%SZ"))
            run = db.start_run("b1", ended - 60)
            db.finish_run(run, ended, "completed", detail=names[-1])
        failed = db.start_run("b1", THURSDAY_MORNING - 60)
        db.finish_run(failed, THURSDAY_MORNING, "failed", detail="/home/alice: unreadable")
    _status, out, _err = _check(nodedir)
    assert ("of the 5 archives recorded here: keeps 3, forgets 2 after the next completed run"
            in out)
    assert f"forgets {names[0]}" in out and f"forgets {names[1]}" in out
    assert f"forgets {names[2]}" not in out
    assert "tahoe-governor archives NODEDIR b1 --keep-preview" in out
    no_rule = cfg.replace("b1.keep = 3 last", "")
    (nodedir / "tahoe.cfg").write_text(no_rule)
    _status, out, _err = _check(nodedir)
    assert "keep:            every archive (b1.keep not set)" in out


def test_check_explains_each_maintenance_task(tmp_path: Path) -> None:
    """check lists every [maintenance] task with its target, schedule, what a pass does and
    its caps; a task whose alias is unknown is refused like a backup job's."""
    nodedir = _nodedir(tmp_path, (CONFIGS / "valid" / "maintenance.cfg").read_text())
    status, out, err = _check(nodedir)
    assert (status, err) == (0, "")
    section = out[out.index("Maintenance (2)"):out.index("Link")]
    assert "  m1\n    target:          backup:pictures\n" in section
    assert "frequency:       1month since the last completed run" in section
    assert "allowed times:   0100-0600" in section
    assert "verify the data of 5% of the files (those verified longest ago first)" in section
    assert "repair what is not healthy; renew the leases" in section
    assert "bandwidth cap:   25 kB/s (200 kbps)  [m1.bandwidth = 200kbps]" in section
    assert "cpu budget:      10% of one core" in section
    assert "repair nothing (repair = false)" in section
    bad = tmp_path / "bad"
    bad.mkdir()
    _nodedir(bad, "[maintenance]\nm1.target = photos:x\nm1.frequency = 1week\n")
    status, out, err = _check(bad)
    assert status == 1
    assert ("[maintenance] m1.target = 'photos:x': expected an alias defined in "
            "private/aliases") in err


def test_an_automatic_cap_is_explained(tmp_path: Path) -> None:
    """check says how an automatic cap starts, what it steers to, and the cap above it."""
    cfg = (CONFIGS / "valid" / "story.cfg").read_text().replace(
        "peer.parents.up = 200kbps", "peer.parents.up = auto\npeer.parents.target_delay = 40ms")
    _status, out, err = _check(_nodedir(tmp_path, cfg))
    assert "up:   auto: starts at 32 kB/s (256 kbps) and follows the line's delay (target 40 ms)" \
        in out, out + err
