"""Shared test fixtures: one Ray instance per test session, and nothing written outside tmp."""

import os
import tempfile

import pytest

import envs  # noqa: F401  (registers the project's gymnasium ids in the test process)

# Before Ray is imported: no token auth, and RLlib's default ~/ray_results lands in a temp HOME.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
os.environ["HOME"] = tempfile.mkdtemp(prefix="rllib-society-home-")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray for the tests that build algorithms; the others never start Ray."""
    import ray

    from experiments.ray_setup import init_ray

    init_ray()
    yield
    ray.shutdown()
