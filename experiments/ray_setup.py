"""Starting or joining Ray for the experiments: one place for the Ray processes' environment
and, on a cluster, the project folder Ray ships to every node."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

#: Environment for every Ray process: no token auth for local work, and no chdir into trial
#: folders (relative paths in env_config keep working).
RAY_ENV_VARS = {"RAY_AUTH_MODE": "disabled", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
#: The project folder, which Ray ships to a cluster's nodes; and what it leaves out.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHIPPING_EXCLUDES = [".git", "runs", "benchmarks/results", "*.png", "__pycache__", ".pytest_cache"]


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Joins the cluster at `address`, or starts an embedded local Ray of its own (with `num_cpus`
    logical CPUs to hand out, default the machine's), even beside a running cluster; does nothing if Ray is already initialised (e.g.
    by the test suite's fixture).

    On a cluster, Ray ships the project folder to every node (runtime_env ``working_dir``), so
    other machines need only the same Python packages, not a checkout.
    """
    os.environ.update({k: os.environ.get(k, v) for k, v in RAY_ENV_VARS.items()})
    import ray

    if ray.is_initialized():
        return
    runtime_env: dict[str, Any] = {"env_vars": {k: os.environ[k] for k in RAY_ENV_VARS}}
    if address is not None:
        runtime_env.update(working_dir=str(PROJECT_ROOT), excludes=SHIPPING_EXCLUDES)
    # "local": a new embedded Ray even when a cluster runs on this machine (ray.init(None) would
    # join the latest one it finds, and die with it).
    ray.init(address=address or "local", num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env,
             logging_level=logging.WARNING)
