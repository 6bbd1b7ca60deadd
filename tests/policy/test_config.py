"""The tahoe.cfg parser: a corpus of valid and invalid files, typed values, and
hypothesis proof that any text yields a Policy or a ConfigError, nothing else."""

from __future__ import annotations

import math
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tahoe_governor.policy.allowed_times import AllowedTimes
from tahoe_governor.policy.config import (
    BANDWIDTH_KEYS,
    INTERFACE_MAX_CHARS,
    JOB_FIELDS,
    Job,
    Policy,
    load_policy,
    parse_interface,
    parse_policy_text,
    target_problems,
)
from tahoe_governor.policy.errors import ConfigError, ConfigProblem, ValueSyntaxError
from tahoe_governor.policy.peers import KnownPeer, peers_from_servers_yaml
from tahoe_governor.policy.retention import KeepRule

CONFIGS = Path(__file__).parent / "configs"
AMS = ZoneInfo("Europe/Amsterdam")


def _header(path: Path, tag: str) -> list[str]:
    """The values of ``# tag: ...`` header lines of a corpus file."""
    prefix = f"# {tag}:"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]


@pytest.mark.parametrize("path", sorted((CONFIGS / "valid").glob("*.cfg")), ids=lambda p: p.name)
def test_valid_corpus(path: Path) -> None:
    """Each valid file parses, with exactly the jobs its header names."""
    policy = parse_policy_text(path.read_text(encoding="utf-8-sig"), AMS)
    (jobs,) = _header(path, "jobs")
    assert [job.name for job in policy.jobs] == jobs.split()


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "invalid").glob("*.cfg")), ids=lambda p: p.name
)
def test_invalid_corpus(path: Path) -> None:
    """Each invalid file raises one ConfigError naming every expected section and key."""
    with pytest.raises(ConfigError) as caught:
        parse_policy_text(path.read_text(encoding="utf-8-sig"), AMS)
    found = sorted(f"{p.section} {p.key or '-'}" for p in caught.value.problems)
    assert found == sorted(_header(path, "expect"))
    for problem in caught.value.problems:
        assert problem.expected, "every problem says what was expected"


def _story() -> Policy:
    return parse_policy_text((CONFIGS / "valid" / "story.cfg").read_text(), AMS)


def test_story_values() -> None:
    """The story's directives arrive as typed values in bytes/s, seconds and fractions."""
    policy = _story()
    (job,) = policy.jobs
    assert job.source == "/Volumes/BackupDrive/Pictures"
    assert job.target == "backup:pictures"
    assert job.frequency == 7 * 86400
    assert job.allowed_times.text == "2200-2400,0000-0800"
    assert job.bandwidth is not None and job.bandwidth.bytes_per_second == 25_000
    assert job.cpu == 0.25 and job.upstream == 0.3
    assert job.exclude == ("*.tmp", ".DS_Store") and job.weight == 1
    assert job.keep == KeepRule(daily=7, weekly=4, monthly=12, yearly=3)
    assert policy.up.capacity is not None and policy.up.capacity.bytes_per_second == 125_000
    assert policy.up.limit is not None and policy.up.limit.bytes_per_second == 75_000
    assert policy.down.limit is not None and policy.down.limit.kind == "unlimited"
    assert policy.up.busy == 0.8 and policy.down.busy is None
    assert policy.up.schedule is not None and len(policy.up.schedule.entries) == 2
    (peer,) = policy.peers
    assert peer.selector.text == "parents" and peer.selector.kind == "nickname"
    assert peer.up is not None and peer.up.bytes_per_second == 25_000


def test_selector_kinds_and_case() -> None:
    """Selectors are classified by form; keys are case-sensitive."""
    policy = parse_policy_text((CONFIGS / "valid" / "bandwidth_only.cfg").read_text(), AMS)
    kinds = {p.selector.text: p.selector.kind for p in policy.peers}
    assert kinds == {
        "a" * 32: "tubid",
        "v0-" + "b" * 52: "server_id",
        "The Parents": "nickname",
    }
    cased = parse_policy_text(
        (CONFIGS / "valid" / "bom_and_case.cfg").read_text(encoding="utf-8-sig"), AMS
    )
    assert [p.selector.text for p in cased.peers] == ["Parents", "parents"]
    assert cased.job("Photos").source == "/a" and cased.job("photos").source == "/b"


def test_multiline_and_home() -> None:
    """Continuation lines join a value; ~ in a source is the user's home."""
    policy = parse_policy_text((CONFIGS / "valid" / "several_jobs.cfg").read_text(), AMS)
    assert policy.job("photos").exclude == ("*.tmp", ".DS_Store", "Thumbs.db")
    assert policy.job("photos").cpu is None
    minimal = parse_policy_text((CONFIGS / "valid" / "minimal.cfg").read_text(), AMS)
    assert minimal.jobs[0].source == os.path.expanduser("~/Documents")
    assert minimal.jobs[0].allowed_times.is_always


def test_cpu_idle_budgets_and_interface() -> None:
    """cpu.idle arrives as a share of one core (None: no budget), equal to cpu when absent;
    interface arrives as written, None when absent."""
    policy = parse_policy_text((CONFIGS / "valid" / "budgets.cfg").read_text(), AMS)
    budgets = {job.name: (job.cpu, job.cpu_idle) for job in policy.jobs}
    assert budgets == {
        "photos": (0.25, 0.75),
        "mail": (0.1, None),
        "docs": (0.5, 0.5),
        "plain": (None, None),
    }
    assert policy.interface == "eth0"
    story = _story()
    assert (story.jobs[0].cpu, story.jobs[0].cpu_idle) == (0.25, 0.25)
    assert story.interface is None
    windows = parse_policy_text((CONFIGS / "valid" / "windows_interface.cfg").read_text(), AMS)
    assert windows.interface == "Local Area Connection* 2"
    direct = Job("x", "/x", "backup:", 60.0, AllowedTimes.always(AMS), cpu=0.25)
    assert direct.cpu_idle == 0.25, "a Job made in code also defaults its idle budget to cpu"


def test_cpu_idle_problems_say_why() -> None:
    """cpu.idle without cpu, or below it, is refused with the reason and the fix."""
    with pytest.raises(ConfigError) as caught:
        parse_policy_text((CONFIGS / "invalid" / "cpu_idle.cfg").read_text(), AMS)
    expected = {p.key: p.expected for p in caught.value.problems}
    assert expected["alone.cpu.idle"].startswith("alone.cpu to be set too")
    assert expected["swapped.cpu.idle"].startswith("at least swapped.cpu = 75%")
    assert expected["below_unlimited.cpu.idle"].startswith(
        "at least below_unlimited.cpu = unlimited"
    )
    assert "did you mean 'typo.cpu.idle'" in expected["typo.cpu.idel"]
    assert expected["bad.cpu.idle"].startswith("a CPU budget N% of one core")


@pytest.mark.parametrize(
    ("text", "name", "reason"),
    [
        ("eth0", "eth0", "Linux"),
        ("  enp3s0  ", "enp3s0", "surrounding blanks are not part of the name"),
        ("en0", "en0", "macOS"),
        ("wlan0.100", "wlan0.100", "a VLAN"),
        ("eth0:1", "eth0:1", "an old-style alias label"),
        ("Wi-Fi 2", "Wi-Fi 2", "Windows names have spaces"),
        ("vEthernet (Default Switch)", "vEthernet (Default Switch)", "Hyper-V"),
        ("x" * INTERFACE_MAX_CHARS, "x" * INTERFACE_MAX_CHARS, "the longest accepted"),
        ("", None, "empty"),
        ("x" * (INTERFACE_MAX_CHARS + 1), None, "too long for any system"),
        ("eth0, wlan0", None, "a list"),
        ("eth0;wlan0", None, "a list"),
        ('"eth0"', None, "quoted"),
        ("'eth0'", None, "quoted"),
        ("/dev/eth0", None, "a path"),
        ("\\Device\\NPF_{X}", None, "a pcap device path, not a psutil name"),
        ("eth0\twlan0", None, "a control character"),
        ("Wi-Fi\u00a02", None, "a non-breaking space inside"),
        ("auto", None, "leave the key out instead"),
    ],
)
def test_interface_names(text: str, name: str | None, reason: str) -> None:
    """parse_interface accepts the names systems give interfaces and refuses the rest."""
    if name is None:
        with pytest.raises(ValueSyntaxError, match="one network interface"):
            parse_interface(text)
    else:
        assert parse_interface(text) == name, reason


def test_problem_message_names_everything() -> None:
    """A problem's text names section, key, value and what was expected."""
    with pytest.raises(ConfigError) as caught:
        parse_policy_text("[bandwidth]\nlimit.up = 5 KB/s\n", AMS)
    (problem,) = caught.value.problems
    assert problem == ConfigProblem(
        "bandwidth", "limit.up", "5 KB/s", problem.expected
    )
    text = str(caught.value)
    assert "[bandwidth] limit.up = '5 KB/s': expected a rate" in text
    assert "did you mean 'kB/s'" in text


def test_default_section_lends_nothing() -> None:
    """Keys of a [DEFAULT] section do not leak into [backups] or [bandwidth]."""
    policy = parse_policy_text("[DEFAULT]\ncolour = red\n[bandwidth]\nlimit.up = 1Mbps\n", AMS)
    assert policy.up.limit is not None and policy.jobs == ()


def test_unknown_key_suggestion() -> None:
    """A misspelt key is refused with the nearest known key."""
    with pytest.raises(ConfigError, match="did you mean 'b1.frequency'"):
        parse_policy_text("[backups]\nb1.frequncy = 1day\n", AMS)


def test_load_policy_reads_the_node_directory(tmp_path: Path) -> None:
    """load_policy reads NODEDIR/tahoe.cfg, and a missing file is a ConfigError."""
    (tmp_path / "tahoe.cfg").write_text("[backups]\nx.source=/a\nx.target=a:\nx.frequency=1h\n")
    assert load_policy(str(tmp_path), AMS).jobs[0].name == "x"
    with pytest.raises(ConfigError, match="readable UTF-8 file"):
        load_policy(str(tmp_path / "missing"), AMS)
    (tmp_path / "tahoe.cfg").write_bytes(b"[backups]\nx.source = /\xff\n")
    with pytest.raises(ConfigError):
        load_policy(str(tmp_path), AMS)


def test_target_aliases() -> None:
    """alias:path targets must name a known alias; caps need none."""
    policy = parse_policy_text((CONFIGS / "valid" / "several_jobs.cfg").read_text(), AMS)
    (problem,) = target_problems(policy, {"tahoe"})
    assert (problem.section, problem.key) == ("backups", "mail_archive.target")
    assert "defined: tahoe" in problem.expected
    assert target_problems(policy, {"backup"}) == []


def test_servers_yaml_peers() -> None:
    """Static servers from servers.yaml become known peers; junk entries are skipped."""
    data = {
        "storage": {
            "v0-" + "c" * 52: {
                "ann": {
                    "nickname": "parents",
                    "anonymous-storage-FURL": "pb://" + "d" * 32 + "@tcp:127.0.0.1:1/x",
                }
            },
            "v0-https-only": {"ann": {"nickname": "h"}},
            "junk": "not a mapping",
        }
    }
    assert peers_from_servers_yaml(data) == [KnownPeer("d" * 32, "v0-" + "c" * 52, "parents")]
    assert peers_from_servers_yaml(None) == []


# Hypothesis: arbitrary text anywhere.

values = st.text(max_size=60)
job_keys = st.sampled_from([f"b1.{field}" for field in JOB_FIELDS])
bandwidth_keys = st.one_of(
    st.sampled_from(BANDWIDTH_KEYS),
    st.text(max_size=20).map(lambda s: f"peer.{s}.up"),
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(job_keys, values, max_size=len(JOB_FIELDS)),
    st.dictionaries(bandwidth_keys, values, max_size=6),
    st.dictionaries(st.text(max_size=15), values, max_size=3),
)
def test_any_text_gives_a_policy_or_a_config_error(
    job: dict[str, str], bandwidth: dict[str, str], extra: dict[str, str]
) -> None:
    """Whatever the values (and stray keys) say, only ConfigError ever escapes."""
    lines = ["[backups]"]
    lines += [f"{key} = {value}" for key, value in {**job, **extra}.items()]
    lines.append("[bandwidth]")
    lines += [f"{key} = {value}" for key, value in bandwidth.items()]
    try:
        parse_policy_text("\n".join(lines), AMS)
    except ConfigError as e:
        assert e.problems


budgets = st.one_of(st.integers(1, 100).map(lambda n: f"{n}%"), st.just("unlimited"))


def _share(text: str) -> float:
    return math.inf if text == "unlimited" else int(text[:-1]) / 100


@settings(max_examples=100, deadline=None)
@given(cpu=st.one_of(st.none(), budgets), idle=st.one_of(st.none(), budgets))
def test_cpu_idle_is_accepted_exactly_with_cpu_and_not_below_it(
    cpu: str | None, idle: str | None
) -> None:
    """Any cpu / cpu.idle pair parses exactly when cpu.idle is absent, or cpu is set and
    cpu.idle >= cpu; the idle budget then is cpu.idle, else cpu (None: no budget)."""
    lines = ["[backups]", "b1.source = /a", "b1.target = backup:", "b1.frequency = 1day"]
    lines += [f"b1.cpu = {cpu}"] if cpu is not None else []
    lines += [f"b1.cpu.idle = {idle}"] if idle is not None else []
    valid = idle is None or (cpu is not None and _share(idle) >= _share(cpu))
    try:
        (job,) = parse_policy_text("\n".join(lines), AMS).jobs
    except ConfigError as e:
        assert not valid
        assert [p.key for p in e.problems] == ["b1.cpu.idle"]
        return
    assert valid
    shown = idle if idle is not None else cpu
    assert job.cpu_idle == (None if shown in (None, "unlimited") else _share(shown))


interface_names = st.text(
    st.sampled_from("abcxyzAWF0129-_.:@+()* "), min_size=1, max_size=INTERFACE_MAX_CHARS
).map(str.strip).filter(bool)


@settings(max_examples=100, deadline=None)
@given(interface_names)
def test_plausible_interface_names_arrive_as_written(name: str) -> None:
    """Any name made of letters, digits, '-_.:@+()*' and inner blanks reaches the Policy."""
    policy = parse_policy_text(f"[bandwidth]\ninterface = {name}\n", AMS)
    assert policy.interface == name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_interface_is_a_stripped_name_or_a_syntax_error(text: str) -> None:
    """Any text either is a name (stripped, printable, none of the refused characters)
    or a ValueSyntaxError; nothing else escapes."""
    try:
        name = parse_interface(text)
    except ValueSyntaxError:
        return
    assert name == text.strip() and name and name.isprintable()
    assert not set(name) & set("/\\,;'\"") and name != "auto"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_file_gives_a_policy_or_a_config_error(text: str) -> None:
    """Even text that is not INI at all only ever raises ConfigError."""
    try:
        parse_policy_text(text, AMS)
    except ConfigError:
        pass


def test_maintenance_tasks_are_typed_with_their_defaults() -> None:
    """[maintenance] gives typed tasks in file order: verify a fraction (0% allowed),
    repair and add_lease booleans defaulting to true, and the engine's fixed fields."""
    policy = parse_policy_text((CONFIGS / "valid" / "maintenance.cfg").read_text(), AMS)
    m1, ro = policy.maintenance
    assert (m1.name, m1.target, m1.frequency) == ("m1", "backup:pictures", 30 * 86400)
    assert (m1.verify, m1.repair, m1.add_lease, m1.cpu) == (0.05, True, True, 0.1)
    assert m1.bandwidth is not None and m1.bandwidth.resolve(None) == 25_000
    assert m1.allowed_times.text == "0100-0600"
    assert (ro.verify, ro.repair, ro.add_lease, ro.bandwidth) == (0.0, False, True, None)
    assert ro.allowed_times.is_always
    assert (m1.cpu_idle, m1.upstream, m1.weight) == (0.1, None, 1.0)
    assert [job.name for job in policy.scheduled_jobs] == ["pictures", "m1", "ro"]
    assert policy.job("ro") is ro


def test_a_maintenance_task_named_like_a_backup_job_is_refused() -> None:
    """A task and a job share one name space (the controls take a name): the clash is
    reported on the task's key, saying why."""
    text = ("[backups]\nb1.source = /x\nb1.target = backup:\nb1.frequency = 1day\n"
            "[maintenance]\nb1.target = backup:\nb1.frequency = 1week\n")
    with pytest.raises(ConfigError) as caught:
        parse_policy_text(text, AMS)
    (problem,) = caught.value.problems
    assert (problem.section, problem.key) == ("maintenance", "b1.target")
    assert "no [backups] job has" in problem.expected


def test_maintenance_values_are_explained() -> None:
    """Bad verify, repair and unknown keys say what was expected, as [backups] does."""
    text = "[maintenance]\nm1.target = backup:\nm1.frequency = 1week\nm1.verify = half\n" \
           "m1.repair = perhaps\nm1.add_leases = true\n"
    with pytest.raises(ConfigError) as caught:
        parse_policy_text(text, AMS)
    expected = {p.key: p.expected for p in caught.value.problems}
    assert "0 <= N <= 100" in expected["m1.verify"]
    assert expected["m1.repair"] == "true or false"
    assert "did you mean 'm1.add_lease'?" in expected["m1.add_leases"]
