"""``tahoe-governor demo`` arguments: defaults, --quick, overrides, and refusals."""

from __future__ import annotations

import pytest

from tahoe_governor.cli.demo import options_from_args, parse_size
from tahoe_governor.cli.main import build_parser, main
from tahoe_governor.demo.scenario import QUICK, DemoOptions


def options(*argv: str) -> DemoOptions:
    result: DemoOptions = options_from_args(build_parser().parse_args(["demo", *argv]))
    return result


def test_defaults_and_quick() -> None:
    """No flags: the two-minute demo; --quick: the small CI one, still with a sized cap."""
    assert options() == DemoOptions()
    assert options("--quick") == DemoOptions(**QUICK)  # type: ignore[arg-type]
    assert options("--quick").dsl_up is None


def test_flags_override_the_preset() -> None:
    """Every flag given wins over the preset; the rest stays."""
    got = options(
        "--quick",
        "--files",
        "12",
        "--size",
        "1.5MB",
        "--seed",
        "9",
        "--modify",
        "2",
        "--dsl-up",
        "400kbps",
        "--run-seconds",
        "3",
        "--keep",
    )
    assert got == DemoOptions(
        files=12,
        total_bytes=1_500_000,
        seed=9,
        modify=2,
        dsl_up="400kbps",
        run_seconds=3.0,
        keep=True,
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("2000000", 2_000_000), ("20MB", 20_000_000), ("500 kB", 500_000), ("1MiB", 1_048_576)],
)
def test_parse_size(text: str, size: int) -> None:
    """Sizes in bytes, SI or binary units."""
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "20 furlongs"], "expected a size such as 20MB"),
        (["--dsl-up", "fast"], "'fast': expected"),
        (["--dsl-up", "50%"], "'50%': expected"),
        (["--files", "0"], "expected a whole number of 1 or more, got '0'"),
        (["--run-seconds", "-1"], "expected a number of seconds above 0"),
    ],
)
def test_bad_flags_are_refused_by_argparse(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed flag stops the command at once (status 2) with what was expected."""
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--files", "10", "--size", "100"], "too small for 10 files"),
        (["--files", "3", "--size", "3kB", "--modify", "7"], "--modify must be 0 to"),
    ],
)
def test_impossible_tree_refused_before_anything_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tree that cannot be made is refused with status 2 before any grid starts."""
    assert main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err
