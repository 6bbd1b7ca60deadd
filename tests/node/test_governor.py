"""The Governor on an injected clock, with a fake client: every part real but the grid.

``build_governor`` wires the real policy, shaper, meters, budgets, scheduler,
peer watching, status assembly and controls around a client double whose
storage broker the test drives (which servers are known, when enough are
connected). Nothing sleeps and nothing touches the network.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from allmydata.util import base32
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.app import build_governor
from tahoe_governor.node.governor import CAPACITY_SAVE_SECONDS, GRID_WAIT_SECONDS, Governor
from tahoe_governor.node.storage_peers import PEER_REFRESH_SECONDS
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError, private_dict, public_dict
from tahoe_governor.throttle import Shaper
from tahoe_governor.throttle.testing import FakeCounters
from tests.throttle.shaping_fakes import connect

UTC = ZoneInfo("UTC")
NOON = 1795694400.0  # 2026-11-26 12:00 UTC: outside the job's window below
PARENTS = "a" * 32
FRIEND = "b" * 32

CONFIG = """
[backups]
b1.source = /srv/photos
b1.target = backup:photos
b1.frequency = 1day
b1.allowed_times = 2200-0600
b1.cpu = 25%

[bandwidth]
capacity.up = auto
limit.up = 1MB/s
peer.parents.up = 200kbps
"""


class FakeServer:
    """A storage server as Tahoe's broker describes it."""

    def __init__(self, tubid: str, nickname: str) -> None:
        self.tubid, self.nickname = tubid, nickname

    def get_tubid(self) -> bytes:
        return base32.a2b(self.tubid.encode("ascii"))

    def get_nickname(self) -> bytes:
        return self.nickname.encode("utf-8")

    def get_serverid(self) -> bytes:
        return b"v0-" + self.tubid.encode("ascii")


class FakeBroker:
    """Tahoe's StorageFarmBroker, as far as the governor reads it."""

    def __init__(self) -> None:
        self.servers: list[FakeServer] = []
        self.connected_enough: Deferred[None] = Deferred()
        self.asked_happy: int | None = None

    def get_known_servers(self) -> list[FakeServer]:
        return list(self.servers)

    def when_connected_enough(self, happy: int) -> Deferred[None]:
        self.asked_happy = happy
        return self.connected_enough


class FakeClient:
    """A started governed client without Tahoe: a real shaper, a fake broker."""

    def __init__(self, clock: Clock) -> None:
        self.shaper = Shaper(clock)
        self.storage_broker = FakeBroker()
        self.encoding_params = {"k": 3, "happy": 2, "n": 10}
        self.nickname = "alice-laptop"
        self.stopped = 0

    def stopService(self) -> Deferred[None]:
        self.stopped += 1
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.advance(NOON)
    return clock


@pytest.fixture
def database(tmp_path: Any) -> StateDatabase:
    return StateDatabase(str(tmp_path / "governor.sqlite"))


@pytest.fixture
def client(clock: Clock) -> FakeClient:
    return FakeClient(clock)


@pytest.fixture
def governor(clock: Clock, client: FakeClient, database: StateDatabase, tmp_path: Any) -> Governor:
    policy = parse_policy_text(CONFIG, UTC)
    governor = build_governor(clock, client, str(tmp_path), policy, database,
                              counters=FakeCounters())
    governor.start()
    return governor


def test_node_cap_holds_from_start_and_a_nickname_cap_once_the_server_is_known(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """The node cap is on the shaper at start; a nickname cap applies at the first
    peer refresh after the broker hears of the server, and to no other peer."""
    shaper = client.shaper
    assert shaper.node_limit() == (1_000_000, None)
    assert shaper.peer_limit(PARENTS) == (None, None)
    client.storage_broker.servers = [FakeServer(PARENTS, "parents"), FakeServer(FRIEND, "friend")]
    clock.advance(PEER_REFRESH_SECONDS)
    assert shaper.peer_limit(PARENTS) == (25_000, None)
    assert shaper.peer_limit(FRIEND) == (None, None)


def test_jobs_wait_for_enough_servers(governor: Governor, client: FakeClient) -> None:
    """The scheduler starts once shares.happy servers are connected, not before."""
    assert client.storage_broker.asked_happy == 2
    assert not governor.scheduler.running
    client.storage_broker.connected_enough.callback(None)
    assert governor.scheduler.running


def test_jobs_start_after_the_grid_wait_even_without_enough_servers(
    governor: Governor, clock: Clock
) -> None:
    """A grid that never gets happy does not hold the jobs back past GRID_WAIT_SECONDS."""
    clock.advance(GRID_WAIT_SECONDS - 1)
    assert not governor.scheduler.running
    clock.advance(1)
    assert governor.scheduler.running
    assert governor.controls.status().job("b1").state == "waiting"  # due, outside its window


def test_a_cpu_budget_gates_the_jobs_own_throttle(governor: Governor) -> None:
    """The job's throttle is built with the CPU gate of its budget (b1.cpu)."""
    assert governor.budgets.jobs() == ["b1"]
    assert governor.scheduler.runner("b1").throttle._cpu_gate is not None


def test_an_override_reaches_the_shaper_and_the_private_status_only(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """A live override by nickname changes the shaper's cap; status shows it privately."""
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    clock.advance(PEER_REFRESH_SECONDS)
    governor.controls.set_limit("peer", "parents", "up", "400kbps")
    assert client.shaper.peer_limit(PARENTS) == (50_000, None)
    status = governor.controls.status()
    assert status.overrides == ("peer parents up = 400kbps",)
    assert "overrides" not in public_dict(status)
    assert private_dict(status)["overrides"] == ["peer parents up = 400kbps"]
    governor.controls.set_limit("peer", "parents", "up", None)
    assert client.shaper.peer_limit(PARENTS) == (25_000, None)


def test_controls_refuse_unknown_jobs_and_scopes(governor: Governor) -> None:
    """Bad control input raises ControlError naming what was wrong."""
    with pytest.raises(ControlError, match="no backup job named 'b2'"):
        governor.controls.pause("b2")
    with pytest.raises(ControlError, match="limit scope"):
        governor.controls.set_limit("galaxy", "x", "up", "1kbps")  # type: ignore[arg-type]


def test_status_names_peers_by_their_announced_nicknames(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """Each peer the shaper knows appears with the nickname its server announced."""
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    clock.advance(PEER_REFRESH_SECONDS)
    status = governor.controls.status()
    assert status.nickname == "alice-laptop"
    assert [(p.tubid, p.nickname, p.limit_up) for p in status.peers] == [
        (PARENTS, "parents", 25_000)]
    assert status.link.node_limit_up == 1_000_000


def test_stop_parts_stops_everything_and_saves_the_capacity_estimate(
    governor: Governor, client: FakeClient, clock: Clock, database: StateDatabase
) -> None:
    """Stopping records the auto capacity estimate, stops the scheduler and every loop,
    and leaves no timer behind."""
    client.storage_broker.connected_enough.callback(None)
    clock.advance(CAPACITY_SAVE_SECONDS)
    d = governor.stop_parts()
    assert d.called
    assert not governor.scheduler.running and not governor.meters.running
    saved = database.estimate("capacity.up")
    assert saved is not None and saved[1] == clock.seconds()
    assert [call for call in clock.getDelayedCalls() if call.active()] == []


def test_a_nickname_cap_holds_from_the_first_byte_before_any_peer_poll(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """The broker has just heard of the server and no 2 s poll has run: the connection
    is capped from its first write (only one burst leaves at once, then the cap's pace)."""
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    wrapper, _, transport = connect(client.shaper, clock, PARENTS)
    wrapper.write(b"x" * 100_000)
    assert len(transport.value()) <= 4096  # the cap's burst: max(4 KiB, 50 ms of 25 kB/s)
    clock.advance(1.0)
    assert len(transport.value()) <= 4096 + 25_000


def test_a_peer_the_node_cannot_name_holds_the_unresolved_cap(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """A connection to a peer no known server matches holds the caps of selectors that
    have not resolved: 'parents' may turn out to be it. Once the broker names it as
    someone else, that cap is lifted."""
    wrapper, _, transport = connect(client.shaper, clock, FRIEND)
    assert client.shaper.peer_limit(FRIEND) == (25_000, None)
    wrapper.write(b"x" * 100_000)
    assert len(transport.value()) <= 4096
    client.storage_broker.servers = [FakeServer(FRIEND, "friend")]
    clock.advance(PEER_REFRESH_SECONDS)
    assert client.shaper.peer_limit(FRIEND) == (None, None)


def test_a_second_server_announcing_the_capped_nickname_cannot_lift_the_cap(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """Another member of the grid announcing 'parents' at run time is capped too; the
    real parents keep their cap."""
    client.storage_broker.servers = [FakeServer(PARENTS, "parents")]
    clock.advance(PEER_REFRESH_SECONDS)
    client.storage_broker.servers.append(FakeServer(FRIEND, "parents"))
    clock.advance(PEER_REFRESH_SECONDS)
    assert client.shaper.peer_limit(PARENTS) == (25_000, None)
    assert client.shaper.peer_limit(FRIEND) == (25_000, None)


def test_a_full_state_database_shows_on_status_and_metrics_and_stops_nothing(
    client: FakeClient, clock: Clock, tmp_path: Any
) -> None:
    """Real full disk (a tmpfs under private/, skipped where mounting is not
    permitted): the run due at 22:00 cannot be recorded, so the job is failed
    with the state database's reason on the status and /metrics; the meters,
    the capacity saving and the scheduler go on; with room again the retry
    records its run."""
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    from tahoe_governor.backup.job_runner import RETRY_FIRST_SECONDS
    from tahoe_governor.web.metrics import GovernorCollector

    from ..full_disk import small_filesystem

    with small_filesystem(tmp_path / "private") as disk:
        database = StateDatabase(str(disk.path / "governor.sqlite"))
        governor = build_governor(clock, client, str(tmp_path), parse_policy_text(CONFIG, UTC),
                                  database, counters=FakeCounters())
        governor.start()
        client.storage_broker.connected_enough.callback(None)
        disk.fill()
        window_opens = NOON + 10 * 3600
        while clock.seconds() < window_opens:
            clock.advance(CAPACITY_SAVE_SECONDS / 2)
        job = governor.controls.status().job("b1")
        assert job.state == "failed"
        assert job.last_failure == "the state database could not be written (disk full)"
        assert job.retry_at == window_opens + RETRY_FIRST_SECONDS
        assert governor.meters.running and governor.scheduler.running
        assert governor._save_loop.running, "a refused capacity save stops nothing"
        registry = CollectorRegistry()
        registry.register(GovernorCollector(governor.controls.status))
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(generate_latest(registry).decode())
                   for s in family.samples}
        assert samples[("tahoe_governor_job_state", (("job", "b1"), ("state", "failed")))] == 1
        assert samples[("tahoe_governor_job_retry_timestamp_seconds", (("job", "b1"),))] == (
            window_opens + RETRY_FIRST_SECONDS)

        disk.make_room()
        clock.advance(RETRY_FIRST_SECONDS)
        assert [run.job for run in database.runs()] == ["b1"], "the retry was recorded"
        assert governor.controls.status().job("b1").last_failure != job.last_failure
        assert governor.stop_parts().called
        database.close()
