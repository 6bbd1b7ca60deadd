"""NodeGridOperations: uploads, immutable directories and checks, against a fake node."""

from __future__ import annotations

from typing import Any

import pytest
from allmydata import uri
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from tahoe_governor.backup import InFlightAborted, JobThrottle
from tahoe_governor.backup.grid_operations import NodeGridOperations, UnreadableSource
from tahoe_governor.backup.uploadable import BytesSource

from .no_reactor import PARAMS, SECRET, result_of, run_now

FILECAP = uri.CHKFileURI(key=b"k" * 16, uri_extension_hash=b"h" * 32, needed_shares=3,
                         total_shares=10, size=1000).to_string()


class Results:
    def __init__(self, cap: bytes) -> None:
        self._cap = cap

    def get_uri(self) -> bytes:
        return self._cap


class FakeNode:
    """A node whose check gives ``results``, or fails if ``results`` is an exception."""

    def __init__(self, results: Any) -> None:
        self._results = results

    def check(self, monitor: Any, verify: bool, add_lease: bool) -> Deferred:
        assert (verify, add_lease) == (False, False), "checked as tahoe backup checks"
        if isinstance(self._results, Exception):
            return fail(self._results)
        return succeed(self._results)


class FakeClient:
    """Reads an uploadable the way Tahoe's uploader does (key first, then the bytes)."""

    convergence = SECRET

    def __init__(self, check_results: Any = None) -> None:
        self.uploaded: list[bytes] = []
        self.check_results = check_results

    def upload(self, uploadable: Any) -> Deferred:
        return Deferred.fromCoroutine(self._upload(uploadable))

    async def _upload(self, uploadable: Any) -> Results:
        uploadable.set_default_encoding_parameters(dict(PARAMS))
        await uploadable.get_encryption_key()
        size = await uploadable.get_size()
        data = b"".join(await uploadable.read(size))
        self.uploaded.append(data)
        return Results(FILECAP)

    def create_node_from_uri(self, cap: bytes, *args: Any, **kw: Any) -> FakeNode:
        return FakeNode(self.check_results)


class BrokenSource:
    """A local file that fails when read."""

    size = 1000

    def read_at(self, offset: int, length: int) -> bytes:
        raise PermissionError(13, "Permission denied")

    def check_unchanged(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_upload_hands_the_source_to_the_node_and_returns_its_cap():
    """An upload reads the whole source through the governed uploadable and reports its bytes."""
    client = FakeClient()
    throttle = JobThrottle(Clock())
    grid = NodeGridOperations(client, throttle, run_now)
    hashed: list[int] = []
    read: list[int] = []
    data = b"x" * 1000
    cap = result_of(Deferred.fromCoroutine(grid.upload(
        BytesSource(data), throttle.lease(abortable=True),
        on_hashed=hashed.append, on_read=read.append)))
    assert cap == FILECAP
    assert client.uploaded == [data]
    assert sum(hashed) == sum(read) == len(data)


def test_a_local_read_error_is_unreadable_source_not_a_grid_failure():
    """A source that cannot be read fails the upload with UnreadableSource."""
    throttle = JobThrottle(Clock())
    grid = NodeGridOperations(FakeClient(), throttle, run_now)
    failure = result_of(Deferred.fromCoroutine(
        grid.upload(BrokenSource(), throttle.lease(abortable=True))))
    assert failure.check(UnreadableSource)
    assert isinstance(failure.value.args[0], PermissionError)


def test_an_upload_aborted_in_flight_fails_with_the_lease_error():
    """Aborted while held by a suspended throttle, the upload fails with InFlightAborted."""
    throttle = JobThrottle(Clock())
    grid = NodeGridOperations(FakeClient(), throttle, run_now)
    throttle.suspend()
    d = Deferred.fromCoroutine(grid.upload(BytesSource(b"y" * 1000),
                                           throttle.lease(abortable=True)))
    assert not d.called
    assert throttle.abort_in_flight() == 1
    assert result_of(d).check(InFlightAborted)


def test_create_immutable_directory_uploads_the_packed_bytes_as_a_dircap():
    """The packed bytes are uploaded as a file and its cap wrapped as an immutable dircap."""
    client = FakeClient()
    throttle = JobThrottle(Clock())
    grid = NodeGridOperations(client, throttle, run_now)
    packed = b"packed directory" * 10
    dircap = result_of(Deferred.fromCoroutine(
        grid.create_immutable_directory(packed, throttle.lease(abortable=True))))
    assert client.uploaded == [packed]
    assert dircap == uri.wrap_dirnode_cap(uri.from_string(FILECAP)).to_string()
    assert dircap.startswith(b"URI:DIR2-CHK:")


class Health:
    def __init__(self, healthy: bool) -> None:
        self._healthy = healthy

    def is_healthy(self) -> bool:
        return self._healthy


@pytest.mark.parametrize(("results", "healthy"), [
    (Health(True), True),
    (Health(False), False),
    (None, True),  # a literal cap: nothing to check
    (RuntimeError("no servers"), False),  # can't check, so assume it's bad
])
def test_check_answers_as_tahoe_backup_does(results: Any, healthy: bool):
    """Healthy and literal caps pass; unhealthy ones and failed checks do not."""
    grid = NodeGridOperations(FakeClient(check_results=results), JobThrottle(Clock()), run_now)
    got, got_results = result_of(Deferred.fromCoroutine(grid.check(FILECAP)))
    assert got is healthy
    assert got_results is (None if isinstance(results, Exception) else results)
