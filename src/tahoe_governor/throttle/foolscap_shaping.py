"""Put a shaper under a Foolscap Tub's connections; :class:`Shaper` is the one that does it itself.

Outbound: a Tub turns each location hint of a FURL into an endpoint with the
``IConnectionHintHandler`` registered for the hint's type (tcp, tor, i2p).
:class:`ShapedHintHandler` wraps such a handler so that the endpoint it
returns is a :class:`ShapedClientEndpoint`: the connection is shaped from its
first byte, and it is attached to the target's buckets at once (Foolscap's
``Negotiation`` knows its ``target`` TubRef before it sends anything).

Inbound: a Tub listens through an ``IStreamServerEndpoint``;
:class:`ShapedServerEndpoint` shapes each accepted connection, node-wide
first, then on the remote peer's buckets once negotiation has learnt its
TubID (``Negotiation.theirTubRef``). It hands the listening port to the shaper,
which sizes its socket's receive buffer from the node's download cap
(:mod:`.receive_window`): accepted connections inherit it before their handshake.

Two traps, both handled here: ``connect()`` fires with Foolscap's own
protocol, never the wrapper (``TubConnector`` keeps the protocols it gets and
would otherwise close the winning connection as a loser); and ``startTLS``
on the wrapper waits until the bytes written before it have left (see
:class:`~.shaped_protocol.ShapedProtocol`).

:func:`install` does both for a Tub. It uses two Foolscap internals, pinned
by the tested version: ``Tub._connectionHandlers`` (the registered handlers)
and ``Listener._ep`` (a listener's endpoint, replaced only before it starts).
"""

from __future__ import annotations

import re
from typing import Any

from foolscap.ipb import IConnectionHintHandler
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IStreamClientEndpoint, IStreamServerEndpoint
from zope.interface import implementer

from tahoe_governor.throttle.shaped_protocol import ShapedProtocol, ShapingFactory
from tahoe_governor.throttle.shaper import ConnectionShaper

_SHAPER_ATTRIBUTE = "_tahoe_governor_shaper"


def remote_tubid(protocol: Any) -> str | None:
    """The remote TubID a Foolscap ``Negotiation`` (or Tahoe's protocol
    switch, which forwards to one) is talking to, once it is known."""
    if getattr(protocol, "isClient", False):
        target = getattr(protocol, "target", None)
        if target is not None:
            return str(target.getTubID())
    theirs = getattr(protocol, "theirTubRef", None)
    if theirs is not None:
        return str(theirs.getTubID())
    return None


@implementer(IStreamClientEndpoint)
class ShapedClientEndpoint:
    """An ``IStreamClientEndpoint`` whose connections pass through ``shaper``.

    ``connect(factory)`` fires with the protocol ``factory`` built (not the
    shaping wrapper), as every endpoint's caller expects.
    """

    def __init__(self, shaper: ConnectionShaper, endpoint: Any) -> None:
        if not IStreamClientEndpoint.providedBy(endpoint):
            raise TypeError(f"endpoint must provide IStreamClientEndpoint, got {endpoint!r}")
        self.shaper = shaper
        self.endpoint = endpoint

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self.endpoint.connect(
            ShapingFactory(self.shaper, protocolFactory, identify=remote_tubid)
        )
        d.addCallback(_wrapped_protocol)
        return d

    def __repr__(self) -> str:
        return f"<ShapedClientEndpoint {self.endpoint!r}>"


def _wrapped_protocol(wrapper: ShapedProtocol) -> Any:
    return wrapper.wrappedProtocol


@implementer(IStreamServerEndpoint)
class ShapedServerEndpoint:
    """An ``IStreamServerEndpoint`` whose accepted connections pass through ``shaper``."""

    def __init__(self, shaper: ConnectionShaper, endpoint: Any) -> None:
        if not IStreamServerEndpoint.providedBy(endpoint):
            raise TypeError(f"endpoint must provide IStreamServerEndpoint, got {endpoint!r}")
        self.shaper = shaper
        self.endpoint = endpoint

    def listen(self, protocolFactory: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self.endpoint.listen(
            ShapingFactory(self.shaper, protocolFactory, identify=remote_tubid)
        )
        d.addCallback(self._sized)
        return d

    def _sized(self, port: Any) -> Any:
        # the listening socket's receive buffer, inherited by every connection it accepts
        self.shaper.add_listening_port(port)
        return port

    def __repr__(self) -> str:
        return f"<ShapedServerEndpoint {self.endpoint!r}>"


@implementer(IConnectionHintHandler)
class ShapedHintHandler:
    """Wraps an ``IConnectionHintHandler`` (tcp, tor, i2p, ...): the endpoints
    it returns are shaped by ``shaper``. Everything else is the wrapped
    handler's, including ``describe()`` and errors for bad hints."""

    def __init__(self, shaper: ConnectionShaper, handler: Any) -> None:
        if not IConnectionHintHandler.providedBy(handler):
            raise TypeError(f"handler must provide IConnectionHintHandler, got {handler!r}")
        self.shaper = shaper
        self.handler = handler

    def hint_to_endpoint(self, hint: str, reactor: Any, update_status: Any) -> Any:
        result = self.handler.hint_to_endpoint(hint, reactor, update_status)
        if isinstance(result, defer.Deferred):
            return result.addCallback(self._shaped)
        return self._shaped(result)

    def _shaped(self, result: tuple[Any, str]) -> tuple[ShapedClientEndpoint, str]:
        endpoint, hostname = result
        return ShapedClientEndpoint(self.shaper, endpoint), hostname

    def describe(self) -> str:
        describe = getattr(self.handler, "describe", None)
        return str(describe()) if describe is not None else repr(self.handler)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)


def shaped_handler(shaper: ConnectionShaper, handler: Any) -> Any:
    """``handler`` wrapped for ``shaper`` (unchanged if it already is)."""
    if isinstance(handler, ShapedHintHandler):
        if handler.shaper is not shaper:
            raise ValueError(f"{handler!r} is already shaped by another Shaper")
        return handler
    return ShapedHintHandler(shaper, handler)


def shaped_server_endpoint(shaper: ConnectionShaper, what: Any) -> ShapedServerEndpoint:
    """A shaped server endpoint for ``what``: an ``IStreamServerEndpoint`` or a
    description string as ``Tub.listenOn`` takes (``"tcp:3456"``; a bare port
    number is read as ``tcp:PORT`` like Foolscap does). Strings are parsed
    with the shaper's reactor, which must then also provide ``IReactorTCP``
    (or whatever the description's endpoint listens with); Foolscap's own
    ``Listener`` would use the global reactor, which this layer never imports."""
    if isinstance(what, ShapedServerEndpoint):
        return what
    if isinstance(what, bytes):
        what = what.decode("utf-8")
    if isinstance(what, str):
        if re.fullmatch(r"\d+", what):
            what = f"tcp:{what}"
        what = endpoints.serverFromString(shaper.reactor, what)
    if not IStreamServerEndpoint.providedBy(what):
        raise TypeError(
            f"expected an IStreamServerEndpoint or an endpoint description string, got {what!r}"
        )
    return ShapedServerEndpoint(shaper, what)


def listen_on(shaper: ConnectionShaper, tub: Any, what: Any) -> Any:
    """``tub.listenOn(what)``, with every accepted connection shaped by ``shaper``.

    Needed only for listeners added without :func:`install` (after it,
    ``tub.listenOn`` itself is shaped). Returns Foolscap's ``Listener``. A
    description string is parsed with ``shaper.reactor`` (see
    :func:`shaped_server_endpoint`).
    """
    listen = getattr(tub, "_tahoe_governor_listenOn", tub.listenOn)
    return listen(shaped_server_endpoint(shaper, what))


def install(shaper: ConnectionShaper, tub: Any) -> Any:
    """Shape every connection ``tub`` makes and accepts; return ``tub``.

    - every connection-hint handler registered now is wrapped, and so is every
      one registered later with ``tub.addConnectionHintHandler`` (Tahoe's
      ``create_tub`` registers tcp, tor and i2p after removing the defaults);
    - ``tub.listenOn(what)`` is replaced by one that listens through the
      shaper (description strings are parsed with ``shaper.reactor``), and
      listeners created earlier have their endpoint wrapped.

    Call it after the Tub is built and before it starts (before
    ``tub.startService()``, or before it is given a running parent): a
    listener that is already listening cannot be wrapped and raises
    ``RuntimeError``. Calling it again with the same shaper does nothing; with
    another shaper it raises ``ValueError``.
    """
    existing = getattr(tub, _SHAPER_ATTRIBUTE, None)
    if existing is shaper:
        return tub
    if existing is not None:
        raise ValueError(f"{tub!r} is already shaped by another Shaper")
    running = [listener for listener in tub.getListeners() if listener.running]
    if running:
        raise RuntimeError(
            f"install(tub) must be called before the Tub starts listening; "
            f"{len(running)} listener(s) already running: {running!r}"
        )
    handlers = tub._connectionHandlers
    for hint_type, handler in list(handlers.items()):
        handlers[hint_type] = shaped_handler(shaper, handler)
    original_add = tub.addConnectionHintHandler
    original_listen = tub.listenOn

    def addConnectionHintHandler(hint_type: str, handler: Any) -> None:
        original_add(hint_type, shaped_handler(shaper, handler))

    def listenOn(what: Any, _test_options: dict[str, Any] | None = None) -> Any:
        endpoint = shaped_server_endpoint(shaper, what)
        if _test_options is None:
            return original_listen(endpoint)
        return original_listen(endpoint, _test_options)

    for listener in tub.getListeners():
        listener._ep = shaped_server_endpoint(shaper, listener._ep)
    tub.addConnectionHintHandler = addConnectionHintHandler
    tub.listenOn = listenOn
    tub._tahoe_governor_listenOn = original_listen
    setattr(tub, _SHAPER_ATTRIBUTE, shaper)
    return tub


class Shaper(ConnectionShaper):
    """The shaper of a Foolscap application: ``tahoe_governor.throttle.Shaper``.

    A :class:`~.shaper.ConnectionShaper` that installs itself under Tubs with
    :meth:`install` and :meth:`listen_on` (the module functions of the same
    names), as DESIGN.md's library API has it.
    """

    def install(self, tub: Any) -> Any:
        """Shape every connection ``tub`` makes and accepts; returns ``tub``.

        See :func:`install` for what is wrapped and when it must be called
        (before the Tub starts listening).
        """
        return install(self, tub)

    def listen_on(self, tub: Any, what: Any) -> Any:
        """``tub.listenOn(what)`` with every accepted connection shaped.

        ``what`` is an endpoint description string (parsed with this
        shaper's reactor, which must then provide ``IReactorTCP``) or an
        ``IStreamServerEndpoint``; returns Foolscap's ``Listener``.
        """
        return listen_on(self, tub, what)
