"""Test-suite settings shared by every test module."""

import os

from hypothesis import settings

# CI runs hypothesis derandomized so a run is repeatable; locally it explores.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The session's real local Tahoe-LAFS grid for end-to-end tests (tests/grid.py).
from tests.grid import grid, local_grid  # noqa: E402, F401
