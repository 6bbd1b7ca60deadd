"""The local grid fixture itself: a storage server can be stopped and started again, unchanged."""

from __future__ import annotations

import pytest

from tests.grid import LocalGrid, accepts_connections


@pytest.mark.e2e
def test_stop_and_start_a_storage_server(local_grid: LocalGrid) -> None:
    """Stopping closes the server's port; starting brings the same identity back on it."""
    server = local_grid.servers[1]
    tubid, server_id, port = server.tubid, server.server_id, server.tub_port
    assert accepts_connections(port)
    try:
        local_grid.stop_server(1)
        assert not server.running
        assert not accepts_connections(port)
        assert not (server.nodedir / "running.process").exists(), "tahoe run removed its pidfile"
    finally:
        local_grid.start_server(1)
    assert server.running
    assert accepts_connections(port)
    assert (server.tubid, server.server_id, server.nickname) == (tubid, server_id, "storage1")
    assert local_grid.introducer_furl.startswith(f"pb://{local_grid.introducer.tubid}@")


@pytest.mark.e2e
def test_killed_server_restarted_by_the_grid_fixture(grid: LocalGrid) -> None:
    """A killed server leaves a stale pidfile; the fixture's restart replaces it and listens."""
    server = grid.stop_server(2, abrupt=True)
    assert (server.nodedir / "running.process").exists(), "SIGKILL leaves the pidfile"
    assert not accepts_connections(server.tub_port)
    grid.start_stopped_servers()
    assert server.running and accepts_connections(server.tub_port)
