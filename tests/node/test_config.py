"""A governed node's tahoe.cfg: extra sections accepted raw, Foolscap forced, errors named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from allmydata.util.configutil import UnknownConfigError

from tahoe_governor.node import GovernedConfigError, read_governed_config

BASE = """
[node]
nickname = laptop
web.port = tcp:0:interface=127.0.0.1
tub.port = disabled
tub.location = disabled

[client]
shares.needed = 2
shares.happy = 3
shares.total = 3

[storage]
enabled = false
"""


def nodedir(tmp_path: Path, extra: str = "", base: str = BASE) -> Path:
    """A client node directory whose tahoe.cfg is ``base`` followed by ``extra``."""
    d = tmp_path / "node"
    (d / "private").mkdir(parents=True)
    (d / "tahoe.cfg").write_text(textwrap.dedent(base) + textwrap.dedent(extra))
    return d


def client_line(line: str) -> str:
    """BASE with ``line`` added to its [client] section."""
    return BASE.replace("shares.total = 3", "shares.total = 3\n" + line)


def test_governor_sections_handed_over_raw(tmp_path: Path) -> None:
    """[backups] and [bandwidth] pass Tahoe's validation and arrive as written, less comments."""
    d = nodedir(
        tmp_path,
        """
        [backups]
        b1.source = /Volumes/BackupDrive/Pictures
        b1.cpu = 25%
        b1.exclude = *.tmp, .DS_Store

        [bandwidth]
        limit.up = 60%   # of capacity.up
        peer.ParentsDSL.up = 200kbps
        schedule.up = Mon-Fri 0800-1800 100kbps; * 2200-0800 unlimited
        """,
    )
    config = read_governed_config(str(d))
    assert dict(config.sections.backups) == {
        "b1.source": "/Volumes/BackupDrive/Pictures",
        "b1.cpu": "25%",
        "b1.exclude": "*.tmp, .DS_Store",
    }
    assert dict(config.sections.bandwidth) == {
        "limit.up": "60%",
        "peer.ParentsDSL.up": "200kbps",
        "schedule.up": "Mon-Fri 0800-1800 100kbps; * 2200-0800 unlimited",
    }
    assert config.sections.has_backups
    assert config.sections.source == str(d / "tahoe.cfg")
    assert config.sections.text == (d / "tahoe.cfg").read_text(), "the text the node ran with"


def test_absent_sections_are_empty(tmp_path: Path) -> None:
    """A node without [backups] or [bandwidth] still reads, with empty sections."""
    config = read_governed_config(str(nodedir(tmp_path)))
    assert dict(config.sections.backups) == {}
    assert dict(config.sections.bandwidth) == {}
    assert not config.sections.has_backups


def test_tahoe_keys_still_validated_and_read(tmp_path: Path) -> None:
    """Adding the governor's sections keeps Tahoe's own key lists whole (update replaces lists)."""
    config = read_governed_config(str(nodedir(tmp_path)))
    assert config.tahoe.get_config("client", "shares.needed") == "2"
    assert config.tahoe.get_config("node", "nickname") == "laptop"
    assert config.basedir == str(tmp_path / "node")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (BASE + "[bogus]\nx = 1\n", r"unknown section \[bogus\]"),
        (BASE.replace("shares.total = 3", "shares.total = 3\nnot.a.key = 1"), "'not.a.key'"),
        (BASE.replace("nickname = laptop", "nickname = laptop\nb1.source = /x"), "'b1.source'"),
    ],
    ids=["unknown section", "unknown [client] key", "governor key in [node]"],
)
def test_unknown_sections_and_keys_still_rejected(tmp_path: Path, text: str, named: str) -> None:
    """Only the governor's two sections are added: anything else unknown is still an error."""
    with pytest.raises(UnknownConfigError, match=named):
        read_governed_config(str(nodedir(tmp_path, base=text)))


def test_foolscap_forced_when_absent(tmp_path: Path) -> None:
    """Without force_foolscap in the file both are true in memory, each with a sentence."""
    d = nodedir(tmp_path)
    before = (d / "tahoe.cfg").read_text()
    config = read_governed_config(str(d))
    assert config.tahoe.get_config("client", "force_foolscap", boolean=True) is True
    assert config.tahoe.get_config("storage", "force_foolscap", boolean=True) is True
    assert len(config.forced) == 2
    assert "[client] force_foolscap is absent" in config.forced[0]
    assert "[storage] force_foolscap is absent" in config.forced[1]
    assert (d / "tahoe.cfg").read_text() == before, "the user's file is never rewritten"


def test_foolscap_forced_over_false(tmp_path: Path) -> None:
    """An explicit false is overridden, and the sentence says the file said false."""
    d = nodedir(tmp_path, base=client_line("force_foolscap = false"))
    config = read_governed_config(str(d))
    assert config.tahoe.get_config("client", "force_foolscap", boolean=True) is True
    assert "[client] force_foolscap is false" in config.forced[0]


def test_nothing_forced_when_already_true(tmp_path: Path) -> None:
    """A file that already forces Foolscap gets no override sentence."""
    base = BASE.replace("shares.total = 3", "shares.total = 3\nforce_foolscap = true").replace(
        "enabled = false", "enabled = false\nforce_foolscap = True"
    )
    config = read_governed_config(str(nodedir(tmp_path, base=base)))
    assert config.forced == ()


def test_bad_boolean_named(tmp_path: Path) -> None:
    """A force_foolscap that is not a boolean is an error naming section, key and value."""
    d = nodedir(tmp_path, base=client_line("force_foolscap = maybe"))
    expected = r"\[client\] force_foolscap = 'maybe'.*true or false"
    with pytest.raises(GovernedConfigError, match=expected):
        read_governed_config(str(d))


def test_not_a_node_directory(tmp_path: Path) -> None:
    """A missing directory, a directory without tahoe.cfg and an introducer are refused by name."""
    with pytest.raises(GovernedConfigError, match="is not a directory"):
        read_governed_config(str(tmp_path / "missing"))
    with pytest.raises(GovernedConfigError, match="holds no tahoe.cfg"):
        read_governed_config(str(tmp_path))
    d = nodedir(tmp_path)
    (d / "tahoe-introducer.tac").write_text("")
    with pytest.raises(GovernedConfigError, match="is an introducer"):
        read_governed_config(str(d))
