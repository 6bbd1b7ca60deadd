"""Signal set-up for the processes the end-to-end tests start and then stop with Ctrl-C."""

from __future__ import annotations

import signal


def restore_default_sigint() -> None:
    """``preexec_fn`` for a child the test will send SIGINT.

    A shell starts a background job with SIGINT ignored, and children inherit
    that; Python then leaves it ignored and Twisted installs no handler, so
    the child would never see the test's Ctrl-C. Give it the default back.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
