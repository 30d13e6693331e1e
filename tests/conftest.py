"""Shared fixtures: one temporary Prefect server for the whole session (docs/stack.md, Prefect).

Under pytest-xdist (`make test` runs two workers) every test that uses the Prefect server is sent
to one worker (xdist group "prefect"), so the server starts once, not once per worker."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A throwaway Prefect API (temp DB); started once, only by tests that ask for it (~50 s with 5
    processes on 2 cores, hence 120 s of patience)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect_home")))
    mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    mp.setenv("PREFECT_UI_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
    mp.undo()


def pytest_collection_modifyitems(config, items):
    """Tests that share the session's Prefect server run on one xdist worker (with `--dist
    loadgroup`; without xdist the mark is inert)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("prefect"))
