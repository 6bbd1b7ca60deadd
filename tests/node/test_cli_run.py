"""``tahoe-governor run`` refuses what it cannot run: one line, status 1, before any reactor."""

from __future__ import annotations

from pathlib import Path

import pytest

from tahoe_governor.cli.main import main as governor_main


@pytest.mark.parametrize(
    ("tahoe_cfg", "expected"),
    [
        (None, "holds no tahoe.cfg"),
        ("[node]\nnickname = x\n[bogus]\nx = 1\n", "unknown section [bogus]"),
        ("[client]\nforce_foolscap = perhaps\n", "[client] force_foolscap = 'perhaps'"),
    ],
    ids=["no tahoe.cfg", "unknown section", "bad boolean"],
)
def test_run_refuses_bad_node_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tahoe_cfg: str | None, expected: str
) -> None:
    """Each bad node directory gets exit status 1 and a configuration error naming the cause."""
    if tahoe_cfg is not None:
        (tmp_path / "tahoe.cfg").write_text(tahoe_cfg)
    assert governor_main(["run", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tahoe-governor run: configuration error:")
    assert expected in err
    assert not (tmp_path / "running.process").exists(), "no pidfile left behind"
