"""``tahoe-governor --version``: its own version and those of Tahoe-LAFS and Foolscap."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from tahoe_governor.cli.main import main as governor_main


def test_version_names_all_three(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the three installed versions and exits 0, needing no subcommand."""
    with pytest.raises(SystemExit) as exited:
        governor_main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"tahoe-governor {version('tahoe-governor')} "
        f"(Tahoe-LAFS {version('tahoe-lafs')}, Foolscap {version('foolscap')})"
    )
