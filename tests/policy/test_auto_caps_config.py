"""``peer.<selector>.up = auto`` and ``peer.<selector>.target_delay`` in tahoe.cfg."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.errors import ConfigError

UTC = ZoneInfo("UTC")


def bandwidth(lines: str) -> str:
    return "[bandwidth]\n" + lines + "\n"


def test_auto_and_a_target_delay_are_read() -> None:
    """An automatic upload cap with its own target; a fixed download cap beside it."""
    (peer,) = parse_policy_text(bandwidth(
        "peer.parents.up = auto\npeer.parents.down = 1Mbps\npeer.parents.target_delay = 40ms"),
        UTC).peers
    assert (peer.up_auto, peer.up, peer.target_delay) == (True, None, 0.04)
    assert peer.down is not None and peer.down.bytes_per_second == 125_000


def test_auto_is_read_for_downloads_too() -> None:
    """``peer.<selector>.down = auto``: a download cap found from the delay, timed by
    the receiving side."""
    (peer,) = parse_policy_text(bandwidth("peer.parents.down = auto"), UTC).peers
    assert (peer.down_auto, peer.down, peer.up_auto) == (True, None, False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("peer.parents.target_delay = soon", "expected a delay such as 25ms"),
        ("peer.parents.target_delay = 5s", "from 1ms to 1s"),
        ("peer.parents.target_dealy = 25ms", "peer.<selector>.target_delay"),
    ],
)
def test_mistakes_are_refused_naming_what_was_expected(line: str, message: str) -> None:
    """Each mistake is a problem naming the key, the value and what was expected."""
    with pytest.raises(ConfigError, match=message):
        parse_policy_text(bandwidth(line), UTC)
