"""GovernedUploadable: Tahoe's convergent key, reads gated by the job's bucket, pieces."""

from __future__ import annotations

import os

import pytest
from allmydata.immutable.upload import Data
from allmydata.interfaces import IUploadable
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, LoopingCall

from tahoe_governor.backup import InFlightAborted, JobThrottle
from tahoe_governor.backup.uploadable import (
    BytesSource,
    FileSource,
    GovernedUploadable,
    SourceChanged,
)

from .no_reactor import PARAMS, SECRET, result_of, run_now


def governed(data: bytes, throttle: JobThrottle, run_blocking=run_now, **kw) -> GovernedUploadable:
    u = GovernedUploadable(BytesSource(data), SECRET, throttle, throttle.lease(abortable=True),
                           run_blocking, **kw)
    u.set_default_encoding_parameters(dict(PARAMS))
    return u


def test_provides_iuploadable():
    """It is an IUploadable the node's uploader accepts."""
    u = governed(b"x", JobThrottle(Clock()))
    assert IUploadable.providedBy(u)


def test_convergent_key_matches_tahoes():
    """Same bytes, secret and parameters give FileHandle's key: caps converge with tahoe backup."""
    data = os.urandom(300_000)
    ours = governed(data, JobThrottle(Clock()), hash_piece_bytes=70_000)
    theirs = Data(data, SECRET)
    theirs.set_default_encoding_parameters(dict(PARAMS))
    assert result_of(ours.get_encryption_key()) == result_of(theirs.get_encryption_key())
    assert result_of(ours.get_encryption_key()) == result_of(theirs.get_encryption_key()), \
        "asking again gives the same key"


def test_hash_pass_yields_to_the_reactor_between_pieces():
    """The key pass runs piece by piece through run_blocking; timers run between pieces."""
    clock = Clock()
    handed: list[tuple] = []

    def deferred_runner(f, *args) -> Deferred:
        d: Deferred = Deferred()
        handed.append((f, args, d))
        return d

    ticks = []
    timer = LoopingCall(lambda: ticks.append(clock.seconds()))
    timer.clock = clock
    timer.start(0.01, now=False)
    data = os.urandom(5 * 1000)
    u = governed(data, JobThrottle(clock), deferred_runner, hash_piece_bytes=1000)
    key = u.get_encryption_key()
    pieces = 0
    while handed:
        assert not key.called
        f, args, d = handed.pop()
        clock.advance(0.01)  # the reactor turns while a piece is out
        d.callback(f(*args))
        pieces += 1
    timer.stop()
    assert pieces == 5
    assert len(ticks) == 5, "the timer kept time during the hash pass"
    reference = Data(data, SECRET)
    reference.set_default_encoding_parameters(dict(PARAMS))
    assert result_of(key) == result_of(reference.get_encryption_key())


def test_reads_wait_for_wire_tokens_scaled_by_n_over_k():
    """A read is charged plaintext * N/k wire bytes and fires only when the bucket has them."""
    clock = Clock()
    throttle = JobThrottle(clock, wire_rate=10_000, burst=4096)
    data = os.urandom(60_000)
    u = governed(data, throttle)
    result_of(u.get_all_encoding_parameters())
    d = u.read(3000)  # 10_000 wire bytes
    assert not d.called
    clock.pump([0.01] * 50)  # 4096 + 5000 < 10_000
    assert not d.called
    clock.pump([0.01] * 15)
    assert b"".join(result_of(d)) == data[:3000]
    assert throttle.granted_wire_bytes == 10_000


def test_literal_sized_sources_cost_nothing():
    """A source small enough for a literal cap puts no share bytes on the wire."""
    throttle = JobThrottle(Clock(), wire_rate=0)
    u = governed(b"tiny", throttle)
    assert b"".join(result_of(u.read(100))) == b"tiny"
    assert throttle.granted_wire_bytes == 0


def test_suspended_reads_hand_nothing():
    """While the job is suspended no read completes; resume releases it."""
    clock = Clock()
    throttle = JobThrottle(clock)
    u = governed(os.urandom(10_000), throttle)
    throttle.suspend()
    d = u.read(1000)
    clock.advance(100)
    assert not d.called
    throttle.resume()
    assert len(b"".join(result_of(d))) == 1000


def test_abort_fails_a_pending_read():
    """Aborting in-flight work fails a waiting read with InFlightAborted."""
    clock = Clock()
    throttle = JobThrottle(clock)
    u = governed(os.urandom(10_000), throttle)
    throttle.suspend()
    d = u.read(1000)
    throttle.abort_in_flight()
    assert result_of(d).check(InFlightAborted)


def test_file_shrinking_while_read_is_a_local_error(tmp_path):
    """A file cut short under the uploader fails the read and is recorded as a local error."""
    path = tmp_path / "f"
    path.write_bytes(os.urandom(100_000))
    throttle = JobThrottle(Clock())
    u = GovernedUploadable(FileSource(str(path)), SECRET, throttle,
                           throttle.lease(abortable=True), run_now)
    u.set_default_encoding_parameters(dict(PARAMS))
    assert len(b"".join(result_of(u.read(50_000)))) == 50_000
    path.write_bytes(b"short")
    failure = result_of(u.read(50_000))
    assert failure.check(SourceChanged)
    assert isinstance(u.local_error, SourceChanged)
    u.close()


def test_file_source_refuses_what_is_not_a_regular_file(tmp_path):
    """A FIFO or a symlink put where a file was is refused at once, never waited on or followed."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "real").write_bytes(b"data")
    os.symlink("real", tmp_path / "link")
    for name in ("fifo", "link"):
        with pytest.raises(OSError):
            FileSource(str(tmp_path / name))
    source = FileSource(str(tmp_path / "real"))
    assert (source.size, source.read_at(1, 10)) == (4, b"ata")
    source.close()


class SwappedContent:
    """A source whose bytes change after the key pass while its stat would not show it
    (a rewrite within the filesystem's timestamp granularity)."""

    def __init__(self, before: bytes, after: bytes) -> None:
        self.size = len(before)
        self._data = before
        self._after = after

    def read_at(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]

    def swap(self) -> None:
        self._data = self._after

    def check_unchanged(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_bytes_unlike_the_keys_fail_the_last_read():
    """The encoder's bytes are hashed as the key was: if they are not the bytes the key was
    made from, the last read fails with SourceChanged (no cap under another content's key),
    even when size and times look unchanged."""
    source = SwappedContent(b"a" * 5000, b"b" * 5000)
    u = GovernedUploadable(source, SECRET, JobThrottle(Clock()),
                           JobThrottle(Clock()).lease(abortable=True), run_now)
    u.set_default_encoding_parameters(dict(PARAMS))
    result_of(u.get_encryption_key())
    source.swap()
    assert len(b"".join(result_of(u.read(4000)))) == 4000
    failure = result_of(u.read(4000))
    assert failure.check(SourceChanged) and isinstance(u.local_error, SourceChanged)


def test_an_unchanged_source_reads_to_the_end():
    """The same check passes for bytes that are the key's."""
    source = SwappedContent(b"a" * 5000, b"b" * 5000)
    u = GovernedUploadable(source, SECRET, JobThrottle(Clock()),
                           JobThrottle(Clock()).lease(abortable=True), run_now)
    u.set_default_encoding_parameters(dict(PARAMS))
    result_of(u.get_encryption_key())
    assert b"".join(result_of(u.read(4000)) + result_of(u.read(4000))) == b"a" * 5000
    assert u.local_error is None


def test_file_source_sees_a_rewrite_at_the_same_size(tmp_path):
    """FileSource compares its fstat when opened with the listing's, and again at the end:
    a rewrite in place at the same size is seen either way."""
    path = tmp_path / "f"
    path.write_bytes(b"one")
    listed = os.lstat(path)
    source = FileSource(str(path), None, listed)
    source.check_unchanged()
    os.utime(path, ns=(0, listed.st_mtime_ns + 1000))
    with pytest.raises(SourceChanged):
        source.check_unchanged()
    source.close()
    with pytest.raises(SourceChanged):
        FileSource(str(path), None, listed)
