"""Shared fixtures: every test seeded from its own node id; `--shuffle-seed N` runs the tests in a
random order; one temporary Prefect server for the whole session (docs/stack.md, Prefect).

Under pytest-xdist (`make test` runs two workers) every test that uses the Prefect server is sent
to one worker (xdist group "prefect"), so the server starts once, not once per worker."""

from __future__ import annotations

import os
import random
import zlib

import pytest

from gancore.utils.seed import seed_all

SHUFFLE_ENV = "GANCORE_SHUFFLE_SEED"


def _seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def pytest_addoption(parser):
    parser.addoption(
        "--shuffle-seed",
        type=int,
        default=int(os.environ[SHUFFLE_ENV]) if os.environ.get(SHUFFLE_ENV) else None,
        help=f"run the tests in a random order drawn from this seed (or ${SHUFFLE_ENV}): files in "
        "a shuffled order, each file's tests shuffled in turn; the same seed, the same order",
    )


def pytest_report_header(config):
    seed = config.getoption("--shuffle-seed")
    return None if seed is None else f"test order shuffled with --shuffle-seed {seed}"


@pytest.fixture(autouse=True)
def _seeded(request):
    """python, numpy and torch seeded from the test's node id: a test draws the same numbers alone,
    in any order and on any xdist worker, never what the tests before it left."""
    seed_all(_seed_of(request.node.nodeid))


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A module or session fixture seeded from its own name and scope, not from whichever test
    happens to build it first."""
    if fixturedef.scope != "function":
        seed_all(_seed_of(f"{request.node.nodeid}::{fixturedef.argname}"))
    yield


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


def _shuffled(items: list, seed: int) -> list:
    """Files in a seeded random order, each file's tests shuffled by the same seed. A file's tests
    stay together, so module fixtures are built once; xdist groups are marks, kept by any order."""
    rng = random.Random(seed)
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    files = list(by_file.values())
    rng.shuffle(files)
    for group in files:
        rng.shuffle(group)
    return [item for group in files for item in group]


def pytest_collection_modifyitems(config, items):
    """Tests that share the session's Prefect server run on one xdist worker (with `--dist
    loadgroup`; without xdist the mark is inert); `--shuffle-seed` reorders the tests (every xdist
    worker draws the same order from the same seed, as xdist requires)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("prefect"))
    seed = config.getoption("--shuffle-seed")
    if seed is not None:
        items[:] = _shuffled(items, seed)
