"""The part of a reactor this layer uses (its clock), typed structurally for mypy.

Twisted's ``IReactorTime`` is a zope interface, which mypy cannot check
without a plugin; :class:`ReactorClock` names the same two methods as a
Protocol, so the real reactor and ``twisted.internet.task.Clock`` both fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class DelayedCall(Protocol):
    """A pending ``callLater``: what this layer does with one."""

    def active(self) -> bool: ...

    def cancel(self) -> None: ...


class ReactorClock(Protocol):
    """``IReactorTime``'s ``seconds`` and ``callLater``."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> Any: ...
