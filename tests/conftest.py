"""Shared test fixtures: one Ray instance for the whole test run, nothing written outside tmp, and each
test marked with its kind (`pytest -m unit` runs the fast ones)."""

import os
import shutil
import tempfile

import pytest

import envs  # noqa: F401  (registers the project's gymnasium ids in the test process)

# Before Ray is imported: no token auth, and RLlib's default ~/ray_results lands in a temp HOME.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
TEST_HOME = tempfile.mkdtemp(prefix="rllib-society-home-")
os.environ["HOME"] = TEST_HOME


def pytest_unconfigure(config):
    """Removes the temp HOME this test run made (and only it)."""
    shutil.rmtree(TEST_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray for the tests that build algorithms; the others never start Ray."""
    import ray

    from experiments.ray_setup import init_ray

    init_ray()
    yield
    ray.shutdown()


#: Test modules whose every test runs one of the project's scripts (a Ray run in a subprocess).
SCRIPT_MODULES = {"test_run.py", "test_examples.py", "test_package.py", "test_two_rooms_pipeline.py"}


def pytest_collection_modifyitems(config, items):
    """Marks each test with its kind: ``learning`` (marked in its module), ``cluster``
    (test_cluster.py: real ``ray start`` clusters), ``integration`` (starts Ray or a script:
    the ``ray_session`` fixture, a script module, or marked so), else ``unit``."""
    for item in items:
        kinds = {marker.name for marker in item.iter_markers()}
        if "learning" in kinds:
            continue
        if item.path.name == "test_cluster.py":
            item.add_marker(pytest.mark.cluster)
        elif "integration" in kinds or "ray_session" in item.fixturenames or item.path.name in SCRIPT_MODULES:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
