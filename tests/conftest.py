"""Test-suite settings shared by every test module."""

import atexit
import os
import shutil
import tempfile


def _import_tahoe_test_package() -> None:
    """Import ``allmydata.test`` (the grid tests use its in-process grid) before
    our settings: on import it opens ``eliot.log`` in the working directory and
    registers and loads its own hypothesis profiles. The log goes to a
    temporary directory, and our profiles are registered after it."""
    here = os.getcwd()
    logdir = tempfile.mkdtemp(prefix="tahoe-governor-eliot-")
    atexit.register(shutil.rmtree, logdir, True)
    os.chdir(logdir)
    try:
        import allmydata.test  # noqa: F401
    finally:
        os.chdir(here)


_import_tahoe_test_package()

from hypothesis import settings  # noqa: E402

# CI runs hypothesis derandomized so a run is repeatable; locally it explores.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The session's real local Tahoe-LAFS grid for end-to-end tests (tests/grid.py).
from tests.grid import grid, local_grid  # noqa: E402, F401

# The real-Prometheus fixture, for any test that scrapes a node.
from tests.prometheus_harness import prometheus_server  # noqa: E402, F401
