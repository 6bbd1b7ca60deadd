"""A real CPU-bound loop under a 25 % budget, on the real reactor and psutil."""

from __future__ import annotations

import pytest
from twisted.internet import reactor
from twisted.trial import unittest

from tahoe_governor.throttle.testing import run_gated_hashing


@pytest.mark.e2e
class RealProcessCpuBudget(unittest.TestCase):
    timeout = 60

    def test_hashing_loop_gated_at_a_quarter_core(self):
        """Hashing gated at 25 % for 12 s uses between 18 % and 30 % of one core."""
        d = run_gated_hashing(reactor, budget=0.25, seconds=12.0)

        def check(result):
            assert result["hashed_bytes"] > 0
            assert 0.18 <= result["cpu_share"] <= 0.30, result

        return d.addCallback(check)
