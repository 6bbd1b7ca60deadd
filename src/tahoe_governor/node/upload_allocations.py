"""Storage servers' allocations for an upload, released when the upload ends, late answers too.

Tahoe's uploader asks each storage server to allocate buckets for the shares
it means to place there (``allocate_buckets``), and gives each question 15 s
(``allmydata.immutable.upload``, ``timeout_call``). An answer that arrives
later still hands the server's bucket writers to the question's
``ServerTracker``, which the uploader no longer uses: nothing writes to them,
nothing aborts them, and the server keeps their incoming shares until its
30-minute idle limit. Meanwhile it refuses the same shares to anyone else,
the file's own retry included (same storage index: the encryption key is
convergent), which sees the server as full. Tahoe aborts the writers it uses
when an upload fails (``Encoder.err``), never these.

:class:`AllocationLedger` sees every ``allocate_buckets`` answer of the node's
uploads (:class:`UploadWatchingBroker` wraps the storage broker the uploader
asks for servers; :func:`watched_upload` learns each upload's storage index
from its key) and keeps the writers by storage index. When an upload fails,
:meth:`AllocationLedger.upload_ended` aborts every writer granted for its
storage index (a writer Tahoe aborted already, or closed with its share
whole, is left as it is by the server), and after any upload ends every
answer for it that still arrives is aborted at once: a server frees what it
set aside, and the retry finds room. After a successful upload the writers
it used are closed; only a late answer that came before its end is left to
the server's idle limit (the file is on the grid: nothing needs that room).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from allmydata.interfaces import IUploadable
from allmydata.util.hashutil import storage_index_hash
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

ENDED_REMEMBERED = 1024
"""Storage indexes of ended uploads kept, to abort answers that arrive after the end."""


class AllocationLedger:
    """The bucket writers granted to the node's uploads, by storage index."""

    def __init__(self) -> None:
        self._writers: dict[bytes, list[Any]] = {}
        self._running: Counter[bytes] = Counter()  # two files alike upload to one index
        self._ended: OrderedDict[bytes, None] = OrderedDict()
        self.aborted = 0
        """Writers aborted so far (for tests and diagnostics)."""

    def granted(self, storage_index: bytes, writers: dict[int, Any]) -> None:
        """A server answered ``allocate_buckets`` for ``storage_index`` with ``writers``
        (share number -> its bucket writer's remote reference)."""
        if storage_index in self._ended:
            self._abort(writers.values())  # the upload is over: free them now
            return
        self._writers.setdefault(storage_index, []).extend(writers.values())

    def upload_began(self, storage_index: bytes) -> None:
        """An upload of ``storage_index`` starts (again): its answers are its own."""
        self._ended.pop(storage_index, None)
        self._running[storage_index] += 1

    def upload_ended(self, storage_index: bytes, failed: bool) -> None:
        """The upload of ``storage_index`` ended: once no other upload of it runs,
        abort what it was granted if it ``failed``, and whatever is granted to it
        from now on."""
        self._running[storage_index] -= 1
        if self._running[storage_index] > 0:
            return
        del self._running[storage_index]
        writers = self._writers.pop(storage_index, ())
        if failed:
            self._abort(writers)
        self._ended[storage_index] = None
        self._ended.move_to_end(storage_index)
        while len(self._ended) > ENDED_REMEMBERED:
            self._ended.popitem(last=False)

    def _abort(self, writers: Any) -> None:
        for writer in writers:
            self.aborted += 1
            abort = getattr(writer, "abort", None)  # HTTP storage's writers have one
            d = maybeDeferred(abort) if abort is not None else writer.callRemote("abort")
            # a writer closed, gone with its connection, or aborted by Tahoe: nothing to free
            d.addErrback(lambda f: log.debug("abort of a bucket writer: {f}", f=f.value))


class _Watching:
    """Tahoe's ``inner`` object as it is, but for what a subclass watches for ``ledger``."""

    def __init__(self, inner: Any, ledger: AllocationLedger) -> None:
        self._inner = inner
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _WatchedStorageServer(_Watching):
    """A server's storage interface whose ``allocate_buckets`` answers the ledger sees."""

    def allocate_buckets(self, storage_index: bytes, *args: Any, **kwargs: Any) -> Any:
        d = self._inner.allocate_buckets(storage_index, *args, **kwargs)

        def granted(answer: Any) -> Any:
            _already_got, writers = answer
            self._ledger.granted(storage_index, dict(writers))
            return answer

        return d.addCallback(granted)


class _WatchedServer(_Watching):
    """An ``IServer`` of an upload, its storage interface watched."""

    def get_storage_server(self) -> Any:
        storage_server = self._inner.get_storage_server()
        if storage_server is None:
            return None
        return _WatchedStorageServer(storage_server, self._ledger)


class UploadWatchingBroker(_Watching):
    """A storage broker whose servers for an upload report their allocations to ``ledger``."""

    def get_servers_for_psi(self, peer_selection_index: bytes, for_upload: bool = False) -> Any:
        servers = self._inner.get_servers_for_psi(peer_selection_index, for_upload=for_upload)
        if not for_upload:
            return servers
        return [_WatchedServer(server, self._ledger) for server in servers]


@implementer(IUploadable)
class _KeyedUploadable:
    """An uploadable that tells the ledger its storage index once its key is known."""

    def __init__(self, uploadable: Any, ledger: AllocationLedger) -> None:
        self._uploadable = uploadable
        self._ledger = ledger
        self.storage_index: bytes | None = None

    def get_encryption_key(self) -> Deferred[bytes]:
        d: Deferred[bytes] = self._uploadable.get_encryption_key()
        return d.addCallback(self._keyed)

    def _keyed(self, key: bytes) -> bytes:
        if self.storage_index is None:
            self.storage_index = storage_index_hash(key)
            self._ledger.upload_began(self.storage_index)
        return key

    def ended(self, result: Any) -> Any:
        if self.storage_index is not None:
            self._ledger.upload_ended(self.storage_index, failed=isinstance(result, Failure))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uploadable, name)


def watched_upload(
    ledger: AllocationLedger, uploadable: Any, upload: Callable[[Any], Deferred[Any]]
) -> Deferred[Any]:
    """``upload(uploadable)``, with what the servers allocate for it released when it ends."""
    keyed = _KeyedUploadable(uploadable, ledger)
    return upload(keyed).addBoth(keyed.ended)
