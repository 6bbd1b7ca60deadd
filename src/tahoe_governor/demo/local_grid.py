"""A real local Tahoe-LAFS grid on loopback: an introducer and storage servers as ``tahoe run``.

Used by the demo (``tahoe-governor demo``) and by the end-to-end tests (the
fixtures in ``tests/grid.py``). Node directories are made with Tahoe's own
``create-introducer`` and ``create-node`` (``allmydata.scripts.runner``, in
this process: it takes milliseconds where a subprocess per node would take
seconds of imports), then each node runs as a ``tahoe run`` subprocess.
Subprocesses, not in-process nodes, because:

- stopping a server is then what it is in life: the process goes away and its
  connections close, so a test that stops one mid-upload sees real errors;
- the nodes share no reactor, Foolscap log or Tahoe global state with the
  governed node, which runs in the calling process;
- ``tahoe run`` exits when its stdin closes, so if the calling process dies
  without cleaning up, the grid goes with it.

Each node runs in a session of its own, so a Ctrl-C in the terminal reaches
only the calling process, which then stops its governed node before the grid.
Every node listens on 127.0.0.1 only (unless the caller places it on another
address, in another network namespace: ``Placement``); storage uses Foolscap
(``[storage] force_foolscap = true`` and ``[client] force_foolscap = true``).
Readiness is polled (a Tub port that accepts, the introducer counting every
storage announcement), never slept for.

::

    grid = LocalGrid(root, nicknames=("alpha", "parents-dsl", "gamma"))
    grid.start()
    try:
        nodedir = grid.make_client_dir(root / "client")
        grid.stop_server(0)      # its clients see the connection close
        grid.start_server(0)     # same port, same identity
    finally:
        grid.close()
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

# Tahoe is imported inside the functions that use it: this module is imported
# by tests/conftest.py, and importing Tahoe costs every test run seconds.

LOOPBACK = "127.0.0.1"

#: Seconds the whole grid may take to come up. It takes about 12 s; the first
#: start after a machine sat idle, with Tahoe's files out of the page cache,
#: once took over 60 s (five ``tahoe`` processes each importing it cold).
STARTUP_BUDGET = 120.0
#: Seconds a node may take to stop after SIGTERM before it is killed.
STOP_BUDGET = 10.0
_POLL_INTERVAL = 0.05


class GridError(Exception):
    """The local grid did not come up or go down as expected."""


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 free right now (the node binds it moments later)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def tahoe_create(*argv: str) -> None:
    """Run a ``tahoe create-*`` command in this process; raise if it fails."""
    from allmydata.scripts import runner
    from twisted.python.failure import Failure

    options = runner.Options()
    options.parseOptions(list(argv))
    sub = options.subOptions
    sub.stdout, sub.stderr = io.StringIO(), io.StringIO()
    outcome: list[Any] = []
    runner.create_dispatch[options.subCommand](sub).addBoth(outcome.append)
    if not outcome:
        # With --port/--location (or --listen=none) nothing waits on the network.
        raise GridError(f"tahoe {' '.join(argv)} did not finish at once")
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    if outcome[0] != 0:
        raise GridError(f"tahoe {' '.join(argv)} failed: {sub.stderr.getvalue()}")


def set_tahoe_cfg(nodedir: Path, settings: dict[tuple[str, str], str]) -> None:
    """Set ``[section] key = value`` pairs in ``nodedir/tahoe.cfg`` with Tahoe's own writer."""
    from allmydata.util import configutil
    from twisted.python.filepath import FilePath

    path = nodedir / "tahoe.cfg"
    parser = configutil.get_config(str(path))
    for (section, key), value in settings.items():
        configutil.set_config(parser, section, key, value)
    configutil.write_config(FilePath(str(path)), parser)


def poll(what: str, ready: Callable[[], bool], deadline: float) -> None:
    """Return once ``ready()`` is true; GridError naming ``what`` after ``deadline``."""
    while not ready():
        if time.monotonic() > deadline:
            raise GridError(f"timed out waiting for {what}")
        time.sleep(_POLL_INTERVAL)


def accepts_connections(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts TCP connections on host:port (127.0.0.1 by default)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@attrs.frozen
class Placement:
    """Where a node runs: the address it listens on (Tub and web) and the command prefix
    that starts it there (e.g. ``("ip", "netns", "exec", "lab-parents")``)."""

    host: str = LOOPBACK
    launcher: tuple[str, ...] = ()


@attrs.define
class GridNode:
    """One node of the grid: its directory, Tub port and (while running) its process."""

    name: str
    nodedir: Path
    tub_port: int
    placement: Placement = Placement()
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def nickname(self) -> str:
        """The node's nickname (``[node] nickname``)."""
        from allmydata.util import configutil

        parser = configutil.get_config(str(self.nodedir / "tahoe.cfg"))
        return str(parser.get("node", "nickname"))

    @property
    def tubid(self) -> str:
        """The node's TubID (base32, as in fURLs); known once it has run."""
        return (self.nodedir / "my_nodeid").read_text().strip()

    @property
    def server_id(self) -> str:
        """The storage server id (``v0-...``) clients know it by; known once it has run."""
        return (self.nodedir / "node.pubkey").read_text().strip().removeprefix("pub-")

    @property
    def web_url(self) -> str:
        """The node's web API root URL (on its host, port chosen at start)."""
        url = (self.nodedir / "node.url").read_text().strip()
        # Tahoe writes 127.0.0.1 in node.url whatever interface the server listens on.
        return url.replace(f"//{LOOPBACK}:", f"//{self.placement.host}:", 1)

    @property
    def running(self) -> bool:
        """Whether the node's process is alive."""
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        """Start ``tahoe run`` for this node (returns at once; see ``LocalGrid`` for readiness)."""
        if self.running:
            raise GridError(f"{self.name} is already running")
        (self.nodedir / "node.url").unlink(missing_ok=True)
        self._log = open(self.nodedir / "tahoe-run.log", "ab")
        self.process = subprocess.Popen(
            [*self.placement.launcher, sys.executable, "-m", "allmydata.scripts.runner", "run",
             str(self.nodedir)],
            stdin=subprocess.PIPE,  # tahoe run exits when this closes
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # a terminal's Ctrl-C is for the caller, who stops us
        )

    def wait_listening(self, deadline: float) -> None:
        """Return once the node's Tub and web server accept connections."""
        poll(
            f"{self.name} to listen on {self.placement.host}:{self.tub_port}",
            lambda: self._alive_or_fail() and accepts_connections(self.tub_port,
                                                                  self.placement.host),
            deadline,
        )
        poll(f"{self.name} to write node.url", (self.nodedir / "node.url").exists, deadline)

    def stop(self, abrupt: bool = False) -> None:
        """Stop the node's process: SIGTERM (SIGKILL if it lingers), or SIGKILL if ``abrupt``."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if abrupt else signal.SIGTERM)
            try:
                process.wait(STOP_BUDGET)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _alive_or_fail(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.nodedir / "tahoe-run.log").read_text(errors="replace")[-2000:]
            raise GridError(f"{self.name} exited with {self.process.returncode}:\n{log}")
        return True


class LocalGrid:
    """An introducer and storage servers, all ``tahoe run`` on 127.0.0.1, under ``root``.

    ``nicknames`` names the storage servers (one server each, default
    ``storage0`` .. ``storage2``); each name is also its node directory's name.
    ``placements`` puts nodes (by nickname, or ``introducer``) elsewhere than on
    127.0.0.1 in this process's network namespace (``tests/node/netns_lab.py``).
    """

    def __init__(self, root: Path, nicknames: Sequence[str] = ("storage0", "storage1", "storage2"),
                 placements: Mapping[str, Placement] | None = None):
        names = list(nicknames)
        if not names or len(set(names)) != len(names) or "introducer" in names:
            raise GridError(
                f"storage server nicknames must be distinct and not 'introducer', got {names!r}"
            )
        if any(not name or "/" in name or name.startswith(".") for name in names):
            raise GridError(f"a nickname is also a directory name: got {names!r}")
        placements = dict(placements or {})
        if unknown := set(placements) - {"introducer", *names}:
            raise GridError(f"placements for nodes that are not in the grid: {sorted(unknown)}")
        self.root = root
        # In another namespace any port is free: one free here is as good as any.
        self.introducer = GridNode("introducer", root / "introducer", free_loopback_port(),
                                   placements.get("introducer", Placement()))
        self.servers = [GridNode(name, root / name, free_loopback_port(),
                                 placements.get(name, Placement())) for name in names]
        self.introducer_furl = ""

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Create every node, start them, return when every storage server is announced."""
        deadline = time.monotonic() + STARTUP_BUDGET
        self.root.mkdir(parents=True, exist_ok=True)
        tahoe_create(
            "create-introducer",
            *self._where(self.introducer),
            str(self.introducer.nodedir),
        )
        # create-introducer has no --webport; its web page counts announcements.
        set_tahoe_cfg(self.introducer.nodedir,
                      {("node", "web.port"): self._web_port(self.introducer.placement.host)})
        self.introducer.spawn()
        for server in self.servers:
            tahoe_create(
                "create-node",
                "--nickname",
                server.name,
                *self._where(server),
                "--webport",
                self._web_port(server.placement.host),
                str(server.nodedir),
            )
            set_tahoe_cfg(
                server.nodedir,
                {
                    ("storage", "force_foolscap"): "true",
                    ("client", "force_foolscap"): "true",
                    ("storage", "reserved_space"): "0",
                },
            )
        furl_file = self.introducer.nodedir / "private" / "introducer.furl"
        poll(
            "the introducer's fURL",
            lambda: self.introducer._alive_or_fail() and _has_text(furl_file),
            deadline,
        )
        self.introducer_furl = furl_file.read_text().strip()
        for server in self.servers:
            _write_introducers_yaml(server.nodedir, self.introducer_furl)
            server.spawn()
        self.introducer.wait_listening(deadline)
        for server in self.servers:
            server.wait_listening(deadline)
        poll(
            f"the introducer to hold {len(self.servers)} storage announcements",
            lambda: self._announced_storage_servers() >= len(self.servers),
            deadline,
        )

    def close(self) -> None:
        """Stop every node (servers first), even if stopping one of them fails."""
        errors = []
        for node in [*self.servers, self.introducer]:
            try:
                node.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{node.name}: {e!r}")
        if errors:
            raise GridError("could not stop cleanly: " + "; ".join(errors))

    def stop_server(self, index: int, abrupt: bool = False) -> GridNode:
        """Stop storage server ``index`` (clients see its connection close).

        ``abrupt`` kills it (SIGKILL) as a crash or a power cut would; its
        stale pidfile is then replaced when it starts again.
        """
        server = self.servers[index]
        server.stop(abrupt)
        return server

    def start_server(self, index: int) -> GridNode:
        """Start storage server ``index`` again, on the same port; return once it listens."""
        server = self.servers[index]
        server.spawn()
        server.wait_listening(time.monotonic() + STARTUP_BUDGET)
        return server

    def start_stopped_servers(self) -> None:
        """Start every storage server that is not running (a test left it stopped)."""
        for index, server in enumerate(self.servers):
            if not server.running:
                self.start_server(index)

    def server(self, nickname: str) -> GridNode:
        """The storage server called ``nickname``."""
        for server in self.servers:
            if server.name == nickname:
                return server
        known = ", ".join(server.name for server in self.servers)
        raise GridError(f"no storage server called {nickname!r} (servers: {known})")

    # -- clients ------------------------------------------------------------------------

    def create_directory(self) -> str:
        """A new mutable directory on this grid; its write cap (``URI:DIR2:...``).

        Made by a running storage server's client side through its web API on
        loopback (``POST /uri?t=mkdir``, as ``tahoe mkdir`` does), once it is
        connected to every running server (so each holds shares of it), so a
        client node can be given it as an alias before it starts. Any server
        that is connected to all will do: servers connect to each other at the
        same moment, and one pair's crossed connection can leave one of them
        waiting out Foolscap's reconnection back-off.
        """
        running = [s for s in self.servers if s.running]
        if not running:
            raise GridError("no storage server is running to create a directory")
        maker: list[GridNode] = []

        def one_is_connected_to_all() -> bool:
            maker[:] = [s for s in running
                        if len(_connected_storage_servers(s.web_url)) >= len(running)][:1]
            return bool(maker)

        try:
            poll(f"a storage server to connect to all {len(running)} running servers",
                 one_is_connected_to_all, time.monotonic() + STARTUP_BUDGET)
        except GridError as e:
            raise GridError(f"{e}: {self._connections(running)}") from None
        request = urllib.request.Request(maker[0].web_url + "uri?t=mkdir", data=b"",
                                         method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
            cap = response.read().decode("ascii").strip()
        if not cap.startswith("URI:DIR2:"):
            raise GridError(f"{maker[0].name} answered mkdir with something else than a dircap")
        return cap

    @staticmethod
    def _connections(servers: Sequence[GridNode]) -> str:
        """Which storage servers each of ``servers`` is connected to, for an error."""
        seen = []
        for server in servers:
            try:
                names = sorted(_connected_storage_servers(server.web_url))
            except OSError as e:
                names = [f"(its page did not answer: {e})"]
            seen.append(f"{server.name} sees {', '.join(names) or 'none'}")
        return "; ".join(seen)

    def make_client_dir(
        self,
        nodedir: Path,
        nickname: str = "governed",
        shares: tuple[int, int, int] = (2, 3, 3),
        web: bool = True,
        extra_cfg: str = "",
    ) -> Path:
        """A client node directory (no storage, no Tub listener) pointed at this grid.

        ``shares`` is (needed, happy, total); ``web`` gives it a web port on
        127.0.0.1 (chosen at start, see ``node.url``); ``extra_cfg`` is appended
        to tahoe.cfg as written (for ``[backups]`` and ``[bandwidth]``).
        The file does not force Foolscap: a governed node does that itself.
        """
        needed, happy, total = shares
        tahoe_create(
            "create-client",
            "--nickname",
            nickname,
            "--introducer",
            self.introducer_furl,
            "--shares-needed",
            str(needed),
            "--shares-happy",
            str(happy),
            "--shares-total",
            str(total),
            "--webport",
            self._web_port(LOOPBACK) if web else "none",
            str(nodedir),
        )
        if extra_cfg:
            with open(nodedir / "tahoe.cfg", "a", encoding="utf-8") as f:
                f.write("\n" + extra_cfg.strip() + "\n")
        return nodedir

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _web_port(host: str) -> str:
        """A web server on ``host``, on a port chosen when it starts (see node.url)."""
        return f"tcp:0:interface={host}"

    @staticmethod
    def _where(node: GridNode) -> list[str]:
        host = node.placement.host
        return ["--port", f"tcp:{node.tub_port}:interface={host}",
                "--location", f"tcp:{host}:{node.tub_port}"]

    def _announced_storage_servers(self) -> int:
        url = self.introducer.web_url + "?t=json"
        with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
            summary = json.load(response)
        return int(summary["announcement_summary"].get("storage", 0))


def _connected_storage_servers(web_url: str) -> list[str]:
    """The nicknames of the storage servers the node at ``web_url`` is connected to
    (its welcome page)."""
    with urllib.request.urlopen(web_url + "?t=json", timeout=2) as response:  # loopback only
        servers = json.load(response)["servers"]
    return [str(s.get("nickname") or s.get("nodeid", "?")) for s in servers
            if str(s.get("connection_status", "")).startswith("Connected")]


def _has_text(path: Path) -> bool:
    return path.exists() and bool(path.read_text().strip())


def _write_introducers_yaml(nodedir: Path, furl: str) -> None:
    from allmydata.scripts.common import write_introducer
    from twisted.python.filepath import FilePath

    write_introducer(FilePath(os.fsencode(nodedir)), "default", furl)
