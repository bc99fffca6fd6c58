"""Flags that `run.py` and `tune_search.py` share, named as in RLlib's example scripts, and
their translation into config overrides (each flag sets the config key of the same name)."""

from __future__ import annotations

import argparse
from typing import Any

#: Config keys set by the shared flags (``--stop-timesteps`` sets ``stop_timesteps``, ...).
SHARED_KEYS = ("env", "stop_timesteps", "stop_iters", "stop_reward", "num_env_runners",
               "num_envs_per_env_runner", "seed", "output", "address", "storage_path")


def add_shared_flags(parser: argparse.ArgumentParser, default_config: str) -> None:
    """Adds --config, the flags of `SHARED_KEYS` and --set to `parser`."""
    parser.add_argument("--config", default=default_config, help="experiment YAML (default: %(default)s)")
    parser.add_argument("--env", help="gymnasium id with Discrete actions, or module:EnvId")
    parser.add_argument("--stop-timesteps", type=int, help="env-step budget (per trial)")
    parser.add_argument("--stop-iters", type=int, help="training-iteration cap (per trial)")
    parser.add_argument("--stop-reward", type=float, help="also stop once the training env return reaches this")
    parser.add_argument("--num-env-runners", type=int, help="remote env runners (per trial; 0: local sampling)")
    parser.add_argument("--num-envs-per-env-runner", type=int, help="vectorised envs per env runner")
    parser.add_argument("--seed", type=int, help="random seed (a search's first seed)")
    parser.add_argument("--output", help="output folder")
    parser.add_argument("--address", help="existing Ray cluster, e.g. 127.0.0.1:6379 (default: embedded local Ray)")
    parser.add_argument("--storage-path", help="folder every node can reach for trial folders and checkpoints "
                        "(default: inside --output)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, parsed as YAML (env_config.<name>=... for env "
                             "arguments, rllib.<name>=... for any RLlib PPOConfig setting); repeatable, "
                             "applied last")


def shared_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides the shared flags give (None: flag not given)."""
    return {key: getattr(args, key) for key in SHARED_KEYS}
