"""The local grid fixture itself: a storage server can be stopped and started again, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tahoe_governor.demo.local_grid import GridError, GridNode, Placement
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


def test_a_node_placed_elsewhere_is_reached_at_its_own_address(tmp_path: Path) -> None:
    """Tahoe writes 127.0.0.1 in node.url whatever interface it serves on: a node placed on
    another address (another network namespace) is asked there; one on loopback as written."""
    (tmp_path / "node.url").write_text("http://127.0.0.1:4567/\n")
    placed = GridNode("parents", tmp_path, 1234, Placement("10.77.1.2", ("ip", "netns", "exec",
                                                                       "lab-parents")))
    assert placed.web_url == "http://10.77.1.2:4567/"
    assert GridNode("home", tmp_path, 1234).web_url == "http://127.0.0.1:4567/"


def test_placements_must_name_nodes_of_the_grid(tmp_path: Path) -> None:
    """A placement for a node the grid does not have is a mistake, said at once."""
    with pytest.raises(GridError, match=r"not in the grid: \['parrents'\]"):
        LocalGrid(tmp_path, nicknames=("parents",), placements={"parrents": Placement()})
