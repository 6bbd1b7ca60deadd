"""The gate for tests that need a Debian program: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import _pytest.outcomes
import pytest

from tests.system_programs import require_programs


def test_present_programs_pass(tmp_path) -> None:
    """Executable programs let the test run."""
    program = tmp_path / "prog"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    require_programs((str(program),), ("prog",))


def test_missing_program_skips_outside_ci_naming_the_packages(monkeypatch, tmp_path) -> None:
    """Without CI a missing program skips, and the reason says what to apt-get install."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(_pytest.outcomes.Skipped) as skipped:
        require_programs((str(tmp_path / "chromium"),), ("chromium", "chromium-driver"))
    assert "apt-get install chromium chromium-driver" in str(skipped.value)


def test_missing_program_fails_in_ci(monkeypatch, tmp_path) -> None:
    """In CI a missing program is a broken set-up: the test fails instead of skipping."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(_pytest.outcomes.Failed) as failed:
        require_programs((str(tmp_path / "prometheus"),), ("prometheus",))
    assert ".ci/run" in str(failed.value)
