"""Job settings overridden live: parsed as tahoe.cfg's values and applied on top of the file."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.errors import ValueSyntaxError
from tahoe_governor.policy.job_settings import parse_job_setting, with_job_settings

UTC = ZoneInfo("UTC")
CFG = """[backups]
b1.source = /srv/a
b1.target = backup:a
b1.frequency = 1day
b1.allowed_times = 2200-0600
b1.cpu = 25%
b1.cpu.idle = 100%
b2.source = /srv/b
b2.target = backup:b
b2.frequency = 1week
"""


@pytest.mark.parametrize(
    ("job", "settings", "expected", "why"),
    [
        ("b1", {}, ("2200-0600", 86400.0, 0.25, 1.0), "nothing overridden: tahoe.cfg's"),
        ("b1", {"allowed_times": "0100-0300"}, ("0100-0300", 86400.0, 0.25, 1.0),
         "allowed times replaced, the rest kept"),
        ("b1", {"frequency": "2weeks"}, ("2200-0600", 1209600.0, 0.25, 1.0), "frequency"),
        ("b1", {"cpu": "10%"}, ("2200-0600", 86400.0, 0.10, 1.0),
         "a cpu.idle of its own above cpu stays"),
        ("b1", {"cpu": "unlimited"}, ("2200-0600", 86400.0, None, None),
         "unlimited: no budget at all"),
        ("b2", {"cpu": "50%"}, (None, 604800.0, 0.5, 0.5), "no cpu.idle: it follows cpu"),
    ],
)
def test_with_job_settings(job: str, settings: dict[str, str],
                           expected: tuple[object, ...], why: str) -> None:
    """Each row: the overrides of one job, and its allowed times, frequency, cpu, cpu.idle."""
    policy = parse_policy_text(CFG, UTC)
    applied = with_job_settings(policy, {(job, s): v for s, v in settings.items()}).job(job)
    got = (applied.allowed_times.text, applied.frequency, applied.cpu, applied.cpu_idle)
    assert got == pytest.approx(expected), why
    other = "b2" if job == "b1" else "b1"
    assert with_job_settings(policy, {(job, s): v for s, v in settings.items()}).job(other) \
        == policy.job(other)


def test_an_override_of_a_job_no_longer_configured_is_left_out() -> None:
    """A setting kept for a job that tahoe.cfg no longer has changes nothing."""
    policy = parse_policy_text(CFG, UTC)
    assert with_job_settings(policy, {("b9", "frequency"): "1day"}) == policy


@pytest.mark.parametrize(
    ("setting", "text", "message"),
    [
        ("allowed_times", "25:00-26:00", "allowed_times = '25:00-26:00': expected"),
        ("frequency", "often", "frequency = 'often': expected a duration"),
        ("cpu", "-5%", "cpu = '-5%': expected"),
    ],
)
def test_bad_values_say_what_was_expected(setting: str, text: str, message: str) -> None:
    """The parsers of tahoe.cfg judge the value; the message names setting and value."""
    with pytest.raises(ValueSyntaxError, match=message):
        parse_job_setting(setting, text, UTC)
