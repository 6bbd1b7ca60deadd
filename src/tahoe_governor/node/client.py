"""The governed Tahoe-LAFS client node, run in-process: Tahoe's ``_Client`` with shaped Tubs.

``create_governed_client`` follows Tahoe-LAFS 1.20.0's
``allmydata.client.create_client_from_config`` step by step (tahoe-lafs is
pinned to that release) and changes three things: the main Tub is made by
``tubs.create_shaped_main_tub`` (plain Foolscap, shaper installed before it
listens), the storage broker's ``tub_maker`` is wrapped so every per-server
Tub is shaped before it connects, and the node object is a ``GovernedClient``
(log Tub on loopback, stop hooks, web mounts, the governor's raw sections,
and uploads that release what the servers allocated for them when they end:
:mod:`.upload_allocations`).
"""

from __future__ import annotations

from typing import Any

from allmydata import client as tahoe_client
from allmydata import node as tahoe_node
from foolscap.api import Tub
from twisted.internet import defer
from twisted.internet.interfaces import IReactorCore
from twisted.web.resource import IResource

from tahoe_governor.node import download_race, noisy_logs, query_timeouts, share_placement
from tahoe_governor.node.config import GovernedConfig, GovernorSections
from tahoe_governor.node.logs import node_log, node_log_failure
from tahoe_governor.node.stopping import DEFAULT_STOP_HOOK_TIMEOUT, StopHook, StopHooks
from tahoe_governor.node.tubs import (
    TubShaper,
    create_shaped_main_tub,
    listen_on_loopback,
    shaped_tub_maker,
)
from tahoe_governor.node.upload_allocations import (
    AllocationLedger,
    UploadWatchingBroker,
    watched_upload,
)
from tahoe_governor.node.webroot import MountError, mount_on_root
from tahoe_governor.throttle import ConnectionShaper


class GovernedClient(tahoe_client._Client):
    """A Tahoe-LAFS client node whose Tubs are shaped; build it with ``create_governed_client``.

    Beyond Tahoe's ``_Client`` it offers ``shaper`` (the one installed on its
    Tubs, for the layers that set limits and read rates), ``sections`` (the
    raw ``[backups]`` and ``[bandwidth]``), ``add_stop_hook`` and ``mount``;
    its log Tub listens on 127.0.0.1 only. Its uploads release every bucket
    the storage servers allocated for them once they end (``allocations``),
    even for an answer that came after Tahoe's 15 s timeout.
    """

    def __init__(
        self,
        *tahoe_args: Any,
        reactor: Any,
        shaper: TubShaper,
        sections: GovernorSections,
        stop_hook_timeout: float = DEFAULT_STOP_HOOK_TIMEOUT,
    ) -> None:
        # Node.__init__ calls create_log_tub, which needs the reactor.
        self._reactor = reactor
        self.shaper = shaper
        self.sections = sections
        self.stop_hooks = StopHooks(reactor, stop_hook_timeout)
        self._stopping: defer.Deferred[Any] | None = None
        self.allocations = AllocationLedger()
        super().__init__(*tahoe_args)

    def get_storage_broker(self) -> Any:
        """Tahoe's storage broker, its servers for an upload reporting what they allocate."""
        return UploadWatchingBroker(super().get_storage_broker(), self.allocations)

    def upload(self, uploadable: Any, reactor: Any = None) -> defer.Deferred[Any]:
        """Tahoe's upload; when it ends, the servers' allocations for it are released."""
        return watched_upload(self.allocations, uploadable,
                              lambda keyed: super(GovernedClient, self).upload(keyed, reactor))

    def create_log_tub(self) -> None:
        """Tahoe's log Tub (for ``flogtool tail``), listening on loopback only."""
        self.log_tub = Tub()
        portnum = listen_on_loopback(self.log_tub, self._reactor)
        self.log(f"Log Tub location set to 127.0.0.1:{portnum} (loopback only)")
        self.log_tub.setServiceParent(self)

    def add_stop_hook(self, name: str, hook: StopHook) -> None:
        """Run ``hook()`` (may return a Deferred or awaitable) when the node stops.

        Hooks run in the order added, before any of the node's services stop,
        each bounded by the stop hook timeout.
        """
        self.stop_hooks.add(name, hook)

    @property
    def has_web_server(self) -> bool:
        """Whether the node serves web pages (``[node] web.port`` is set)."""
        return "webish" in self.namedServices

    def mount(self, segment: str, resource: IResource) -> None:
        """Serve ``resource`` at ``/<segment>`` on the node's web port (``[node] web.port``)."""
        try:
            web = self.getServiceNamed("webish")
        except KeyError:
            raise MountError(
                f"cannot mount /{segment}: the node has no web server "
                "(set [node] web.port in tahoe.cfg)"
            ) from None
        mount_on_root(web.root, segment, resource)
        node_log(f"mounted /{segment} on the node's web server")

    def stopService(self) -> defer.Deferred[None]:
        """Run the stop hooks, then stop Tahoe's services; a second call waits for the first.

        The Deferred always fires with None: a failure to stop is logged, as
        nothing more can be done about it at that point.
        """
        if self._stopping is None:
            d: defer.Deferred[Any] = defer.ensureDeferred(self._stop())
            d.addErrback(lambda f: node_log_failure("the node did not stop cleanly", f))
            self._stopping = d
        waiter: defer.Deferred[None] = defer.Deferred()
        self._stopping.addCallback(lambda _: waiter.callback(None))
        return waiter

    async def _stop(self) -> None:
        node_log("stopping: running stop hooks " + repr(list(self.stop_hooks.names)))
        await self.stop_hooks.run()
        await super().stopService()
        node_log("node stopped")


@defer.inlineCallbacks
def create_governed_client(
    config: GovernedConfig,
    shaper: TubShaper,
    reactor: IReactorCore,
    stop_hook_timeout: float = DEFAULT_STOP_HOOK_TIMEOUT,
) -> Any:
    """Build (not start) the governed client node; a Deferred firing with the ``GovernedClient``.

    ``shaper`` is any object with ``install(tub)``; it is called once for the
    main Tub now and once for each storage server's Tub as the node meets it.
    """
    tahoe = config.tahoe
    share_placement.install()  # a repeated upload or a repair keeps the shares servers hold
    download_race.install()  # late shares for a stopped segment fetcher are not an error
    if isinstance(shaper, ConnectionShaper):  # a query waiting behind capped bytes is not lost
        query_timeouts.install(shaper)
    noisy_logs.install()  # Tahoe's NOISY events cost the node CPU on every file
    for sentence in config.forced:
        node_log(sentence)
    i2p_provider = tahoe_client.create_i2p_provider(reactor, tahoe)
    tor_provider = tahoe_client.create_tor_provider(reactor, tahoe)
    default_handlers, foolscap_handlers = tahoe_node.create_connection_handlers(
        tahoe, i2p_provider, tor_provider
    )
    tub_options = tahoe_node.create_tub_options(tahoe)
    main_tub = create_shaped_main_tub(
        tahoe,
        tub_options,
        default_handlers,
        foolscap_handlers,
        i2p_provider,
        tor_provider,
        shaper,
    )
    introducer_clients = tahoe_client.create_introducer_clients(tahoe, main_tub)
    storage_broker = tahoe_client.create_storage_farm_broker(
        tahoe, default_handlers, foolscap_handlers, tub_options, introducer_clients, tor_provider
    )
    # StorageFarmBroker documents _tub_maker as its ivar; every NativeStorageServer
    # (announced or static, see _make_storage_server) gets its Tub from it.
    storage_broker._tub_maker = shaped_tub_maker(storage_broker._tub_maker, shaper)

    client = GovernedClient(
        tahoe,
        main_tub,
        i2p_provider,
        tor_provider,
        introducer_clients,
        storage_broker,
        reactor=reactor,
        shaper=shaper,
        sections=config.sections,
        stop_hook_timeout=stop_hook_timeout,
    )
    storage_plugins = yield tahoe_client._StoragePlugins.from_config(
        client.get_anonymous_storage_server, tahoe
    )
    client.init_storage(storage_plugins.announceable_storage_servers)

    i2p_provider.setServiceParent(client)
    tor_provider.setServiceParent(client)
    for introducer_client in introducer_clients:
        introducer_client.setServiceParent(client)
    storage_broker.setServiceParent(client)
    node_log(
        f"governed node built in {config.basedir}: Foolscap only, shaper on every storage Tub; "
        + ("backup jobs configured" if config.sections.has_backups else "no [backups] section")
    )
    return client
