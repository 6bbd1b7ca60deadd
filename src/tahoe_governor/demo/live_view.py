"""A block of lines refreshed in place on a terminal, or printed now and then elsewhere.

On a terminal each :meth:`LiveView.show` moves the cursor back to the top of
the previous block and redraws it (ANSI: cursor up, erase to the end of the
screen). Into a file or a pipe (CI logs) redrawing would only pile up
copies, so the block is printed once every ``plain_every`` seconds instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

_CURSOR_UP = "\x1b[{}F"  # to the start of the line n lines up
_ERASE_BELOW = "\x1b[J"


class LiveView:
    """Shows successive frames of lines on ``out``; ``now`` arguments are seconds."""

    def __init__(self, out: IO[str], in_place: bool, plain_every: float = 5.0) -> None:
        self._out = out
        self._in_place = in_place
        self._plain_every = plain_every
        self._drawn = 0  # lines of the frame on screen (in place)
        self._last_plain: float | None = None
        self._pending: Sequence[str] = ()

    @classmethod
    def for_stream(cls, out: IO[str], plain_every: float = 5.0) -> LiveView:
        """In place when ``out`` is a terminal."""
        isatty = getattr(out, "isatty", None)
        return cls(out, in_place=bool(isatty and isatty()), plain_every=plain_every)

    def show(self, lines: Sequence[str], now: float) -> None:
        """Show ``lines`` as the current frame."""
        if self._in_place:
            if self._drawn:
                self._out.write(_CURSOR_UP.format(self._drawn) + _ERASE_BELOW)
            self._out.write("".join(line + "\n" for line in lines))
            self._drawn = len(lines)
        elif self._last_plain is None or now - self._last_plain >= self._plain_every:
            self._out.write("".join(line + "\n" for line in lines))
            self._last_plain = now
            self._pending = ()
        else:
            self._pending = lines
        self._out.flush()

    def finish(self, lines: Sequence[str] | None = None) -> None:
        """End the block: ``lines`` (or a frame not printed yet) stays as the final frame."""
        final = lines if lines is not None else self._pending
        if final:
            if self._in_place and self._drawn:
                self._out.write(_CURSOR_UP.format(self._drawn) + _ERASE_BELOW)
            self._out.write("".join(line + "\n" for line in final))
            self._out.flush()
        self._drawn = 0
        self._last_plain = None
        self._pending = ()
