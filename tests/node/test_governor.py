"""The Governor on an injected clock, with a fake client: every part real but the grid.

``build_governor`` wires the real policy, shaper, meters, budgets, scheduler,
peer watching, status assembly and controls around a client double whose
storage broker the test drives (which servers are known, when enough are
connected). Nothing sleeps and nothing touches the network.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from allmydata.util import base32
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tahoe_governor.app import build_governor
from tahoe_governor.node.governor import (
    CAPACITY_SAVE_SECONDS,
    GRID_WAIT_SECONDS,
    TICK_SECONDS,
    Governor,
)
from tahoe_governor.node.storage_peers import PEER_REFRESH_SECONDS
from tahoe_governor.policy.config import parse_policy_text
from tahoe_governor.policy.state_db import StateDatabase
from tahoe_governor.status import ControlError, private_dict, public_dict
from tahoe_governor.status.display_names import display_name
from tahoe_governor.throttle import Shaper
from tahoe_governor.throttle.testing import FakeCounters
from tahoe_governor.web.governor_tree import GovernorResource
from tests.cli.stub_node import _result
from tests.throttle.shaping_fakes import connect
from tests.web.web_client import BASE, TOKEN, root_with_governor

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


def governor_on_fake_line(
    tmp_path: Any, config: str, servers: dict[str, str], round_trip: Any,
    receive_rtt: Any = lambda transport: None,
) -> tuple[Governor, Clock, FakeClient]:
    """A started Governor at NOON on a Clock, knowing ``servers`` (TubID -> nickname), whose
    connections' round trips ``round_trip(transport)`` gives (for automatic caps), and their
    receiving sides' ``receive_rtt(transport)``."""
    clock = Clock()
    clock.advance(NOON)
    client = FakeClient(clock)
    client.storage_broker.servers = [FakeServer(tubid, nick) for tubid, nick in servers.items()]
    governor = build_governor(
        clock, client, str(tmp_path), parse_policy_text(config, UTC),
        StateDatabase(str(tmp_path / "governor.sqlite")), counters=FakeCounters(),
        round_trip=round_trip, receive_round_trip=receive_rtt)
    governor.start()
    return governor, clock, client


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


def test_readers_share_a_snapshot_per_tick_and_every_control_shows_at_once(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """The pages' readers share one snapshot for a meter tick; pause, resume, run now
    and a limit each show in the very next snapshot, without the clock moving."""
    client.storage_broker.connected_enough.callback(None)
    first = governor.controls.status()
    assert governor.controls.status() is first
    governor.controls.pause("b1")
    assert governor.controls.status().job("b1").state == "paused"
    governor.controls.resume("b1")
    assert governor.controls.status().job("b1").state != "paused"
    governor.controls.set_limit("job", "b1", "up", "100kbps")
    assert governor.controls.status().overrides == ("job b1 up = 100kbps",)
    before = governor.controls.status()
    governor.controls.run_now("b1", force=True)
    assert governor.controls.status() is not before
    clock.advance(TICK_SECONDS)
    assert governor.controls.status().at == clock.seconds()


def test_controls_refuse_unknown_jobs_and_scopes(governor: Governor) -> None:
    """Bad control input raises ControlError naming what was wrong."""
    with pytest.raises(ControlError, match="unknown job 'b2': expected one of b1"):
        governor.controls.pause("b2")
    with pytest.raises(ControlError, match="limit scope"):
        governor.controls.set_limit("galaxy", "x", "up", "1kbps")  # type: ignore[arg-type]


def test_controls_refuse_a_peer_selector_that_names_nothing(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """A typo of a selector is refused, naming the known ones, and nothing is kept;
    a known server's nickname, TubID or server id and a tahoe.cfg selector are accepted."""
    client.storage_broker.servers = [FakeServer(FRIEND, "friend")]
    clock.advance(PEER_REFRESH_SECONDS)
    with pytest.raises(ControlError) as refused:
        governor.controls.set_limit("peer", "parnets", "up", "100kbps")
    assert str(refused.value) == (
        "unknown peer 'parnets': expected the TubID, server id or nickname of a storage "
        "server the node knows, or a selector of tahoe.cfg [bandwidth] "
        f"(known: parents, {FRIEND} (friend))")
    assert governor.controls.status().overrides == ()
    governor.controls.set_limit("peer", "parents", "up", "100kbps")  # configured, not yet seen
    for selector in ("friend", FRIEND, f"v0-{FRIEND}"):
        governor.controls.set_limit("peer", selector, "down", "100kbps")
    assert len(governor.controls.status().overrides) == 4


def test_controls_refuse_to_clear_an_override_that_is_not_set(governor: Governor) -> None:
    """Clearing what is not overridden is an error naming the overrides in force."""
    with pytest.raises(ControlError, match=r"no override of node up to clear \(overrides: none\)"):
        governor.controls.set_limit("node", "", "up", None)
    governor.controls.set_limit("job", "b1", "up", "100kbps")
    with pytest.raises(ControlError, match=r"no override of peer parents up to clear "
                                           r"\(overrides: job b1 up\)"):
        governor.controls.set_limit("peer", "parents", "up", None)
    with pytest.raises(ControlError, match="unknown job 'b9': expected one of b1"):
        governor.controls.set_limit("job", "b9", "up", None)
    governor.controls.set_limit("job", "b1", "up", None)
    assert governor.controls.status().overrides == ()


def test_controls_refuse_upload_rates_below_the_segment_floor(governor: Governor) -> None:
    """At 3-of-10 a peer cap needs 1865 bps and a node or job cap 18642 bps, so that a
    segment reaches the servers within their idle limit; lower is refused, the floor named."""
    with pytest.raises(ControlError) as refused:
        governor.controls.set_limit("peer", "parents", "up", "200bps")
    assert str(refused.value) == (
        "peer parents up = '200bps': expected at least 1865 bps (233.1 B/s): below it one "
        "server's block of a segment (349526 bytes at 3-of-10) cannot reach the storage "
        "servers within 25 minutes, and their 30-minute idle limit aborts every upload")
    for scope, name in (("node", ""), ("job", "b1")):
        with pytest.raises(ControlError, match=r"at least 18642 bps \(2330.2 B/s\): below it "
                                               r"the 10 blocks of one segment"):
            governor.controls.set_limit(scope, name, "up", "18kbps")  # type: ignore[arg-type]
    assert governor.controls.status().overrides == ()
    governor.controls.set_limit("peer", "parents", "up", "1865bps")
    governor.controls.set_limit("node", "", "up", "18642bps")
    governor.controls.set_limit("node", "", "down", "8bps")  # downloads: no idle limit


def test_the_private_page_refuses_a_typo_through_the_real_controls(
    governor: Governor, clock: Clock
) -> None:
    """The page's control, over the real NodeControls rather than a double, answers a
    typo of a selector with a 400 naming the known ones, and keeps nothing."""
    stub = StubTreq(root_with_governor(GovernorResource(governor.controls, TOKEN, clock)))

    def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        d = stub.request(method, BASE + url, **kwargs)
        stub.flush()
        response = _result(d)
        return response.code, json.loads(_result(stub.content(response)))

    _, page = call("GET", f"/governor/{TOKEN}/?t=json")
    body = {"csrf": page["csrf"], "scope": "peer", "name": "parnets", "direction": "up",
            "rate": "100kbps"}
    code, answer = call("POST", f"/governor/{TOKEN}/limit", data=json.dumps(body).encode(),
                        headers={"Content-Type": ["application/json"]})
    assert code == 400
    assert answer["error"].startswith("unknown peer 'parnets': expected the TubID")
    assert "(known: parents)" in answer["error"]
    assert governor.controls.status().overrides == ()


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


class UndecodableServer(FakeServer):
    """A server whose announced nickname is bytes that are not UTF-8, with an ESC."""

    def get_nickname(self) -> bytes:
        return b"caf\xe9\x1b[2J"


def test_an_undecodable_nickname_reaches_the_status_escaped_and_encodable(
    governor: Governor, client: FakeClient, clock: Clock
) -> None:
    """Bytes that are not UTF-8 become \\xNN in the snapshot (which JSON and UTF-8
    always encode); the displays escape the ESC on top."""
    client.storage_broker.servers = [UndecodableServer(PARENTS, "")]
    clock.advance(PEER_REFRESH_SECONDS)
    governor.controls.set_limit("peer", PARENTS, "up", "400kbps")  # so the shaper lists it
    (peer,) = governor.controls.status().peers
    assert peer.nickname == "caf\\xe9\x1b[2J"
    assert peer.nickname.encode("utf-8")
    assert display_name(peer.nickname) == "caf\\xe9\\x1b[2J"


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


def test_a_used_up_node_quota_stops_the_shaper_until_the_reset_and_is_saved(
    clock: Clock, client: FakeClient, database: StateDatabase, tmp_path: Any
) -> None:
    """Real bytes through the real shaper count towards quota.up; once 50 kB went out the
    node's upload limit on the shaper is 0 (the bytes still queued stay there), the status
    says so; at midnight the cap is back and the new day counts from 0 (and stops at
    its own 50 kB); the usage is saved when the node stops."""
    policy = parse_policy_text(CONFIG + "quota.up = 50kB/day\n", UTC)
    governor = build_governor(clock, client, str(tmp_path), policy, database,
                              counters=FakeCounters())
    governor.start()
    wrapper, _, transport = connect(client.shaper, clock, FRIEND)
    wrapper.write(b"x" * 200_000)
    for _ in range(8):
        clock.advance(TICK_SECONDS)
    assert client.shaper.node_limit() == (0, None)
    sent = len(transport.value())
    # The connection holds the unresolved 'parents' cap, 25 kB/s: the quota is overrun
    # by at most what one tick lets through and the bucket's burst.
    assert 50_000 <= sent <= 50_000 + 25_000 * TICK_SECONDS + 4096
    clock.advance(3600)
    assert len(transport.value()) == sent  # held: nothing more leaves
    [quota] = governor.controls.status().quotas
    assert (quota.directive, quota.exhausted, quota.used_bytes) == ("quota.up", True, sent)
    assert quota.resets_at == NOON + 12 * 3600
    clock.advance(NOON + 12 * 3600 - clock.seconds())
    assert client.shaper.node_limit() == (1_000_000, None)
    for _ in range(40):  # the queue moves on, counted in the new day, up to its quota
        clock.advance(TICK_SECONDS)
    sent_today = len(transport.value()) - sent
    assert 50_000 <= sent_today <= 50_000 + 25_000 * TICK_SECONDS + 4096
    assert client.shaper.node_limit() == (0, None)
    governor.stop_parts()
    saved = database.quota_usage()
    assert [(key.directive, usage.used_bytes, usage.period_start)
            for key, usage in saved.items()] == [("quota.up", sent_today, NOON + 12 * 3600)]
