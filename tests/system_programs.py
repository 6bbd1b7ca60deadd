"""Tests that need a program from Debian: skipped on a developer's machine without it, failed in CI.

The README's test command must pass on a fresh machine with Python alone, so a
test whose system program is missing is skipped with a reason naming the
Debian packages to install. CI (``CI`` set) installs them in ``.ci/run``: there
a missing program is a broken set-up, and the test fails rather than being
skipped silently.
"""

from __future__ import annotations

import os

import pytest


def require_programs(paths: tuple[str, ...], packages: tuple[str, ...]) -> None:
    """Skip (or, in CI, fail) the calling test unless every program in ``paths`` is executable."""
    missing = [path for path in paths if not os.access(path, os.X_OK)]
    if not missing:
        return
    install = "apt-get install " + " ".join(packages)
    if os.environ.get("CI"):
        pytest.fail(f"CI must install Debian's {', '.join(packages)} (.ci/run): "
                    f"missing {', '.join(missing)}")
    pytest.skip(f"needs Debian's {', '.join(packages)} ({install}); missing {', '.join(missing)}")
