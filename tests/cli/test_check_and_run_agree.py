"""``check`` and ``run`` judge a node directory by one and the same validation.

Whatever ``run`` refuses, ``check`` refuses first, with the same words: Tahoe's
own section, key and value checks, and the governor's sections. Each file below
is fed to both commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tahoe_governor.cli.main import main as governor_main
from tahoe_governor.node.process import CONFIGURATION_ERROR_PREFIX

NODE = "[node]\nnickname = laptop\n"

BAD_FILES = [
    (None, "holds no tahoe.cfg"),
    (NODE + "[upkeep]\nm1.target = backup:x\n", "unknown section [upkeep]"),
    (NODE + "[client]\nshares.neded = 3\n", "shares.neded"),
    (NODE + "[client]\nforce_foolscap = perhaps\n", "expected true or false"),
    (NODE + "[backups]\nb1.source = /srv\nb1.target = backup:x\nb1.frequency = 1fortnight\n",
     "b1.frequency"),
    (NODE + "[bandwidth]\nlimit.up = fast\n", "limit.up"),
    (NODE + "[bandwidth]\nlimit.sideways = 1Mbps\n", "limit.sideways"),
]


def write_node(tmp_path: Path, tahoe_cfg: str | None) -> Path:
    if tahoe_cfg is not None:
        (tmp_path / "tahoe.cfg").write_text(tahoe_cfg)
    return tmp_path


@pytest.mark.parametrize(("tahoe_cfg", "named"), BAD_FILES,
                         ids=["no file", "unknown section", "unknown key", "bad boolean",
                              "bad frequency", "bad rate", "unknown bandwidth key"])
def test_what_run_refuses_check_refuses_with_the_same_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tahoe_cfg: str | None, named: str
) -> None:
    """Both exit 1 before anything starts, and their messages are the same text."""
    nodedir = str(write_node(tmp_path, tahoe_cfg))
    assert governor_main(["check", nodedir]) == 1
    check_err = capsys.readouterr().err
    assert governor_main(["run", nodedir]) == 1
    run_err = capsys.readouterr().err
    assert run_err.startswith(CONFIGURATION_ERROR_PREFIX)
    said = run_err[len(CONFIGURATION_ERROR_PREFIX):].strip()
    assert named in said
    assert check_err.strip() == f"{Path(nodedir) / 'tahoe.cfg'}: {said}"
    assert not (tmp_path / "running.process").exists(), "run left no pidfile behind"


def test_a_good_file_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file both accept: check prints the policy and exits 0."""
    nodedir = str(write_node(tmp_path, NODE + "[bandwidth]\nlimit.up = 1Mbps\n"))
    assert governor_main(["check", nodedir, "--timezone", "UTC"]) == 0
    assert "node limit up:" in capsys.readouterr().out
