"""The live view: redrawn in place on a terminal, printed now and then into a log."""

from __future__ import annotations

import io

from tahoe_governor.demo.live_view import LiveView


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_place_redraws_over_the_previous_frame() -> None:
    """On a terminal each frame moves the cursor up over the last one and erases below."""
    out = Terminal()
    view = LiveView.for_stream(out)
    view.show(["a", "b"], now=0)
    view.show(["c"], now=0.5)
    view.finish(["d", "e"])
    assert out.getvalue() == "a\nb\n" + "\x1b[2F\x1b[J" + "c\n" + "\x1b[1F\x1b[J" + "d\ne\n"


def test_plain_output_is_throttled_and_ends_with_the_last_frame() -> None:
    """Into a file a frame is printed at most every ``plain_every`` seconds, no escape codes;
    the frame held back is printed when the view finishes."""
    out = io.StringIO()
    view = LiveView.for_stream(out, plain_every=5)
    for second in range(12):
        view.show([f"t={second}"], now=second)
    view.finish()
    assert out.getvalue() == "t=0\nt=5\nt=10\nt=11\n"
    view.show(["again"], now=12)  # a new block starts printing at once
    assert out.getvalue().endswith("t=11\nagain\n")


def test_finish_without_pending_frame_prints_nothing() -> None:
    """Finishing right after a printed frame adds nothing."""
    out = io.StringIO()
    view = LiveView(out, in_place=False)
    view.show(["x"], now=0)
    view.finish()
    assert out.getvalue() == "x\n"
