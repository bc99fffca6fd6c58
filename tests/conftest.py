"""Shared test fixtures: one Ray instance per test session, and nothing written outside tmp."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Before Ray is imported: no token auth, and RLlib's default ~/ray_results lands in a temp HOME.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
os.environ["HOME"] = tempfile.mkdtemp(prefix="rllib-society-home-")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray for the tests that build algorithms; the others never start Ray."""
    import ray

    from rllib_society.training import init_ray

    init_ray()
    yield
    ray.shutdown()
