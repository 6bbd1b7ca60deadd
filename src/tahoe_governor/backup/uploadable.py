"""A governed IUploadable: hands bytes to Tahoe's encoder only as the job's throttle admits.

:class:`GovernedUploadable` is Tahoe's ``FileHandle`` (``allmydata.immutable.upload``)
with three changes:

- every :meth:`~GovernedUploadable.read` first passes the job's
  :class:`~tahoe_governor.backup.job_throttle.JobThrottle`, charged the
  plaintext times the upload's erasure expansion N/k (literal files, whose
  bytes travel inside their cap, are charged nothing), and its Deferred fires
  on the reactor when the bucket has the tokens;
- the convergent-key pass (a hash over the whole file before any byte is
  encrypted) runs in pieces handed to ``run_blocking`` — by default the
  reactor's thread pool — so the reactor keeps its timers (and the shaper
  keeps time) during a large file; between pieces it passes the throttle too,
  so a suspended or CPU-gated job stops hashing;
- it records local read errors (:attr:`GovernedUploadable.local_error`) so the
  walker can tell a file that could not be read from a grid failure.

The key is the same as ``FileHandle``'s: ``convergence_hasher(k, n, segsize,
convergence)`` over the file's bytes, so a file uploaded here and by ``tahoe
backup`` gets the same cap.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from allmydata.immutable.upload import BaseUploadable, Uploader
from allmydata.interfaces import IUploadable
from allmydata.util.hashutil import convergence_hasher
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from tahoe_governor.backup.job_throttle import JobThrottle, Lease

T = TypeVar("T")

RunBlocking = Callable[..., "Deferred[Any]"]
"""``run_blocking(f, *args)``: run ``f(*args)`` off the reactor thread; a Deferred of its result."""

HASH_PIECE_BYTES = 1024 * 1024
"""The convergent-key pass hashes this much per trip to the thread pool."""


class SourceChanged(OSError):
    """The local file changed while it was being read (size, times, inode or content)."""


class ByteSource(Protocol):
    """Random-access bytes of known size: a local file or a byte string."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only at the end). Blocking."""

    def check_unchanged(self) -> None:
        """Raise :class:`SourceChanged` if the source changed since it was opened. Blocking."""

    def close(self) -> None:
        """Release the source; further reads are errors."""


def file_version(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written or replaced: size, mtime, ctime, inode, device."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class FileSource:
    """A local regular file, opened once: ``name`` in the open directory ``dir_fd`` (or a
    path). Reads are positional (``os.pread``), so the hash pass in a thread and the
    encoder's reads never share a file offset.

    Opened without following a symlink and without blocking, and refused
    (OSError) unless it is a regular file: an entry swapped for a symlink or a
    FIFO after the walk classified it is not followed, nor waited on.
    """

    _FLAGS = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_NONBLOCK", 0))

    def __init__(self, name: str, dir_fd: int | None = None,
                 expected: os.stat_result | None = None) -> None:
        self._fd: int | None = os.open(name, self._FLAGS, dir_fd=dir_fd)
        try:
            st = os.fstat(self._fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", name)
            self._version = file_version(st)
            if expected is not None and file_version(expected) != self._version:
                raise SourceChanged(errno.EAGAIN, "changed since it was listed", name)
            self.size = st.st_size
        except BaseException:
            self.close()
            raise

    def read_at(self, offset: int, length: int) -> bytes:
        if self._fd is None:
            raise ValueError("read from a closed FileSource")
        pieces = []
        while length > 0:
            piece = os.pread(self._fd, length, offset)
            if not piece:
                break
            pieces.append(piece)
            offset += len(piece)
            length -= len(piece)
        return b"".join(pieces)

    def check_unchanged(self) -> None:
        """Compare the open file's ``fstat`` with the one taken when it was opened."""
        if self._fd is None:
            raise ValueError("check of a closed FileSource")
        if file_version(os.fstat(self._fd)) != self._version:
            raise SourceChanged(errno.EAGAIN, "changed while it was read")

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class BytesSource:
    """Bytes in memory (a packed directory)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]

    def check_unchanged(self) -> None:
        pass

    def close(self) -> None:
        pass


@implementer(IUploadable)
class GovernedUploadable(BaseUploadable):
    """An ``IUploadable`` over a :class:`ByteSource` whose reads pass a :class:`JobThrottle`.

    ``convergence`` is the node's convergence secret (``client.convergence``),
    or None for a random key. ``lease`` is this upload's abortable lease.
    ``on_hashed(n)`` and ``on_read(n)`` are told of bytes hashed by the key
    pass and bytes handed to the encoder.
    """

    def __init__(
        self,
        source: ByteSource,
        convergence: bytes | None,
        throttle: JobThrottle,
        lease: Lease,
        run_blocking: RunBlocking,
        on_hashed: Callable[[int], None] = lambda n: None,
        on_read: Callable[[int], None] = lambda n: None,
        hash_piece_bytes: int = HASH_PIECE_BYTES,
    ) -> None:
        if convergence is not None and not isinstance(convergence, bytes):
            raise TypeError(f"convergence must be bytes or None, got {type(convergence).__name__}")
        self._source = source
        self.convergence = convergence
        self._throttle = throttle
        self._lease = lease
        self._run_blocking = run_blocking
        self._on_hashed = on_hashed
        self._on_read = on_read
        self._hash_piece_bytes = hash_piece_bytes
        self._offset = 0
        self._key: bytes | None = None
        self._key_waiters: list[Deferred[bytes]] | None = None
        self._read_hasher: Any = None
        """The convergent hash of the bytes handed to the encoder, to compare with the key."""
        self.local_error: OSError | None = None
        """The OSError met reading the source, if any (the file was unreadable)."""

    # -- IUploadable ---------------------------------------------------------

    def get_size(self) -> Deferred[int]:
        return succeed(self._source.size)

    def get_encryption_key(self) -> Deferred[bytes]:
        if self._key is not None:
            return succeed(self._key)
        if self.convergence is None:
            self._key = os.urandom(16)
            return succeed(self._key)
        waiter: Deferred[bytes] = Deferred()
        if self._key_waiters is None:
            self._key_waiters = [waiter]
            Deferred.fromCoroutine(self._convergent_key()).addBoth(self._key_done)
        else:
            self._key_waiters.append(waiter)
        return waiter

    def read(self, length: int) -> Deferred[list[bytes]]:
        return Deferred.fromCoroutine(self._read(length))

    def close(self) -> None:
        self._source.close()

    # -- internals -----------------------------------------------------------

    def _wire_bytes(self, plaintext: int, params: tuple[int, int, int, int]) -> int:
        """Wire bytes for ``plaintext`` bytes: N/k of it, nothing for literal files."""
        if self._source.size <= Uploader.URI_LIT_SIZE_THRESHOLD:
            return 0
        k, _happy, n, _segsize = params
        return -(-plaintext * n // k)

    async def _read(self, length: int) -> list[bytes]:
        wanted = max(0, min(length, self._source.size - self._offset))
        if not wanted:
            return [b""]
        params = await self.get_all_encoding_parameters()
        await self._throttle.admit(self._lease, self._wire_bytes(wanted, params))
        offset = self._offset
        self._offset += wanted  # the encoder reads in turn; the next one starts here
        data = await self._run_blocking(self._guarded, self._read_piece, offset, wanted)
        self._on_read(wanted)
        return [data]

    def _read_piece(self, offset: int, length: int) -> bytes:
        """One read for the encoder (in the thread pool). The last one also checks that
        the file is the one the key was made from: unchanged since it was opened, and the
        bytes handed over have the key's hash; else :class:`SourceChanged` fails the upload
        (no cap is made under a key of other content)."""
        data = self._source.read_at(offset, length)
        if len(data) != length:
            raise SourceChanged(errno.EAGAIN, "the file changed size while it was read")
        if self._read_hasher is not None:
            self._read_hasher.update(data)
        if offset + length == self._source.size:
            self._source.check_unchanged()
            if self._read_hasher is not None and self._read_hasher.digest() != self._key:
                raise SourceChanged(errno.EAGAIN,
                                    "the file changed between the key pass and the encoding")
        return data

    async def _convergent_key(self) -> bytes:
        k, _happy, n, segsize = await self.get_all_encoding_parameters()
        hasher = convergence_hasher(k, n, segsize, self.convergence)
        size = self._source.size
        offset = 0
        while offset < size:
            await self._throttle.admit(self._lease)
            piece = min(self._hash_piece_bytes, size - offset)
            got = await self._run_blocking(self._guarded, _hash_piece, self._source, hasher,
                                           offset, piece)
            if got != piece:
                self._raise_changed()
            offset += got
            self._on_hashed(got)
            if self._status:
                self._status.set_progress(0, offset / size)
        if self._status:
            self._status.set_progress(0, 1.0)
        key = hasher.digest()
        assert len(key) == 16
        self._read_hasher = convergence_hasher(k, n, segsize, self.convergence)
        return key

    def _key_done(self, result: Any) -> None:
        waiters, self._key_waiters = self._key_waiters or [], None
        if isinstance(result, bytes):
            self._key = result
            for waiter in waiters:
                waiter.callback(result)
        else:
            for waiter in waiters:
                waiter.errback(result)

    def _guarded(self, f: Callable[..., T], *args: Any) -> T:
        """Call ``f``, recording any OSError as the source's local error."""
        try:
            return f(*args)
        except OSError as e:
            if self.local_error is None:
                self.local_error = e
            raise

    def _raise_changed(self) -> None:
        error = SourceChanged("the file changed size while it was being read")
        if self.local_error is None:
            self.local_error = error
        raise error


def _hash_piece(source: ByteSource, hasher: Any, offset: int, length: int) -> int:
    """Read ``length`` bytes at ``offset`` and feed them to ``hasher``; return the count read."""
    data = source.read_at(offset, length)
    hasher.update(data)
    return len(data)
