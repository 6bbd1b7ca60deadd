"""Pytest fixtures over the local grid (``tahoe_governor.demo.local_grid``).

Use the session fixture ``local_grid`` (registered in ``tests/conftest.py``)::

    @pytest.mark.e2e
    def test_something(local_grid, tmp_path):
        nodedir = local_grid.make_client_dir(tmp_path / "client")
        ...
        local_grid.stop_server(0)   # and local_grid.start_server(0)

A test that stops servers can take the ``grid`` fixture instead: the same
grid, with every server it left stopped started again afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tahoe_governor.demo.local_grid import (  # noqa: F401  (the names tests import from here)
    LOOPBACK,
    STARTUP_BUDGET,
    STOP_BUDGET,
    GridError,
    GridNode,
    LocalGrid,
    accepts_connections,
    free_loopback_port,
    poll,
    set_tahoe_cfg,
    tahoe_create,
)


@pytest.fixture(scope="session")
def local_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    """The session's local grid: an introducer and 3 storage servers, stopped at the end."""
    grid = LocalGrid(tmp_path_factory.mktemp("grid"))
    try:
        grid.start()
        yield grid
    finally:
        grid.close()


@pytest.fixture
def grid(local_grid: LocalGrid) -> Iterator[LocalGrid]:
    """The session's grid for a test that stops servers: any it leaves stopped are restarted."""
    yield local_grid
    local_grid.start_stopped_servers()
