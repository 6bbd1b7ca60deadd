"""A failed upload releases what the storage servers allocated for it, late answers too."""

from __future__ import annotations

from typing import Any

from allmydata.interfaces import IUploadable
from allmydata.util.hashutil import storage_index_hash
from twisted.internet.defer import Deferred, fail, succeed

from tahoe_governor.node.upload_allocations import (
    AllocationLedger,
    UploadWatchingBroker,
    watched_upload,
)

KEY = b"k" * 16
SI = storage_index_hash(KEY)


class FakeWriter:
    """A bucket writer's remote reference: records the remote calls made to it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def callRemote(self, name: str) -> Deferred[None]:
        self.calls.append(name)
        return succeed(None)


class FakeStorageServer:
    """A server whose allocate_buckets answers when the test says (late, if it likes)."""

    def __init__(self) -> None:
        self.answers: list[Deferred[Any]] = []

    def allocate_buckets(self, storage_index: bytes, *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.answers.append(d)
        return d

    def get_buckets(self, storage_index: bytes) -> Deferred[Any]:
        return succeed({})


class FakeServer:
    def __init__(self) -> None:
        self.storage = FakeStorageServer()

    def get_storage_server(self) -> FakeStorageServer:
        return self.storage

    def get_name(self) -> str:
        return "server"


class FakeBroker:
    def __init__(self, servers: list[FakeServer]) -> None:
        self.servers = servers

    def get_servers_for_psi(self, psi: bytes, for_upload: bool = False) -> list[FakeServer]:
        return self.servers

    def get_connected_servers(self) -> list[FakeServer]:
        return self.servers


class FakeUploadable:
    def get_encryption_key(self) -> Deferred[bytes]:
        return succeed(KEY)


def ask(broker: UploadWatchingBroker, shares: dict[int, FakeWriter]) -> Deferred[Any]:
    """What Tahoe's ServerTracker.query does: allocate on the first server for upload."""
    (server,) = broker.get_servers_for_psi(SI, for_upload=True)
    answer: Deferred[Any] = server.get_storage_server().allocate_buckets(
        SI, b"renew", b"cancel", set(shares), 1000, canary=object())
    return answer


def test_a_failed_upload_aborts_its_writers_and_an_answer_that_comes_after_it() -> None:
    """Writers granted in time and one granted after the 15 s timeout (after the upload
    failed) are all aborted, so the server frees the incoming shares at once."""
    ledger = AllocationLedger()
    server = FakeServer()
    broker = UploadWatchingBroker(FakeBroker([server]), ledger)
    on_time, late = {0: FakeWriter()}, {1: FakeWriter()}
    upload_done: Deferred[Any] = Deferred()

    def upload(uploadable: Any) -> Deferred[Any]:
        assert IUploadable.providedBy(uploadable)
        uploadable.get_encryption_key()
        ask(broker, on_time)
        ask(broker, late)
        return upload_done

    result = watched_upload(ledger, FakeUploadable(), upload)
    server.storage.answers[0].callback((set(), on_time))
    assert on_time[0].calls == []  # in use while the upload runs
    upload_done.errback(RuntimeError("UploadUnhappinessError: server timed out"))
    result.addErrback(lambda f: None)
    assert on_time[0].calls == ["abort"]
    server.storage.answers[1].callback((set(), late))  # the answer after the timeout
    assert late[1].calls == ["abort"]
    assert ledger.aborted == 2


def test_a_retry_keeps_its_own_writers_until_it_ends() -> None:
    """The retry of the same file (same storage index) is not mistaken for the
    ended upload: its writers are left alone while it runs."""
    ledger = AllocationLedger()
    server = FakeServer()
    broker = UploadWatchingBroker(FakeBroker([server]), ledger)
    watched_upload(ledger, FakeUploadable(),
                   lambda u: u.get_encryption_key().addCallback(lambda _: fail(RuntimeError()))
                   ).addErrback(lambda f: None)
    retry_done: Deferred[Any] = Deferred()
    writers = {0: FakeWriter()}

    def retry(uploadable: Any) -> Deferred[Any]:
        uploadable.get_encryption_key()
        ask(broker, writers)
        server.storage.answers[-1].callback((set(), writers))
        return retry_done

    watched_upload(ledger, FakeUploadable(), retry)
    assert writers[0].calls == []
    retry_done.callback("cap")
    assert writers[0].calls == []  # a successful upload's writers are closed: no call
    late = {1: FakeWriter()}
    ask(broker, late).callback((set(), late))
    assert late[1].calls == ["abort"]  # an answer after its end is freed all the same


def test_two_uploads_of_one_file_free_its_writers_only_when_both_ended() -> None:
    """Two files alike share a storage index: the first to end leaves the other's writers."""
    ledger = AllocationLedger()
    ledger.upload_began(SI)
    ledger.upload_began(SI)
    writer = FakeWriter()
    ledger.granted(SI, {0: writer})
    ledger.upload_ended(SI, failed=True)
    assert writer.calls == []
    ledger.upload_ended(SI, failed=True)
    assert writer.calls == ["abort"]


def test_only_upload_servers_are_watched_and_the_rest_passes_through() -> None:
    """Downloads and checks get the broker's own servers; every other attribute is the
    broker's."""
    server = FakeServer()
    broker = UploadWatchingBroker(FakeBroker([server]), AllocationLedger())
    assert broker.get_servers_for_psi(SI) == [server]
    (watched,) = broker.get_servers_for_psi(SI, for_upload=True)
    assert watched is not server and watched.get_name() == "server"
    assert broker.get_connected_servers() == [server]
