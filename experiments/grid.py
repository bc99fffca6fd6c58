"""Grids of experiments: parsing ``--grid key=v1,v2``, and expanding a base config and a grid
into one validated config per trial and seed (before Ray starts), with each trial's name."""

from __future__ import annotations

import itertools
from typing import Any

import yaml

from experiments.config import DOTTED_KEYS, ExperimentConfig, check_key, make_config
from experiments.config_files import load_yaml
from experiments.preflight import validate

#: Keys that are the same for every trial of a search (budget, where to write, which cluster);
#: seeds come from the number of samples.
RUN_LEVEL_KEYS = ("stop_timesteps", "stop_iters", "stop_reward", "checkpoint_frequency",
                  "checkpoint_at_end", "output", "address", "storage_path", "seed")


def parse_grid(items: list[str]) -> dict[str, list]:
    """Parses ``--grid key=v1,v2`` items; each value is read as YAML (``lr=1e-3,3e-4``,
    ``fcnet_hiddens=[16],[32,32]``, ``env_config.n=4,8``)."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ValueError(f"--grid expects key=value1,value2,..., got {item!r}.")
        try:
            values = load_yaml(f"[{raw}]")
        except yaml.YAMLError as error:
            raise ValueError(f"--grid {key}: cannot parse values {raw!r}: {error}") from None
        grid[key] = values
    return grid


def expand_grid(base: ExperimentConfig, grid: dict[str, list], num_samples: int) -> list[ExperimentConfig]:
    """One config per point of the grid and sample, each validated and with its own seed
    (``base.seed``, ``base.seed + 1``, ...).

    Args:
        base: the config every trial starts from.
        grid: config key (or ``env_config.<name>``, ``rllib.<name>``, ``exploration.rate``) -> the
            values to try.
        num_samples: trials (seeds) per grid point.

    Raises:
        ValueError: naming the bad key or value, before any trial starts.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples={num_samples} is not allowed; it must be >= 1.")
    for key, values in grid.items():
        check_key(key.split(".", 1)[0] if key.split(".", 1)[0] in DOTTED_KEYS else key)
        if key in RUN_LEVEL_KEYS:
            raise ValueError(f"--grid {key}: {key} is the same for every trial of a search; "
                             "set it with its flag or --set (seeds: --seed and --num-samples).")
        if not isinstance(values, list) or not values:
            raise ValueError(f"--grid {key}: give at least one value.")
    variants = []
    points = list(itertools.product(*grid.values()))
    for sample in range(num_samples):
        for point in points:
            values = base.to_dict()
            for key, value in zip(grid, point):
                section, dot, name = key.partition(".")
                if dot and section in DOTTED_KEYS:
                    values[section] = {**(values[section] or {}), name: value}
                else:
                    values[key] = value
            values["seed"] = base.seed + len(variants)
            try:
                config = make_config(values)
                validate(config)
            except ValueError as error:
                bad = ", ".join(f"{k}={v!r}" for k, v in zip(grid, point))
                raise ValueError(f"grid point {bad}: {error}") from None
            variants.append(config)
    return variants


def trial_name(config: ExperimentConfig, grid_keys: list[str]) -> str:
    """A readable, unique trial name: the grid values and the seed."""
    parts = [f"{key.rsplit('.', 1)[-1]}={grid_value(config, key)}" for key in grid_keys]
    name = "_".join(parts + [f"seed={config.seed}"])
    return name.replace(" ", "").replace("/", "-")


def grid_value(config: ExperimentConfig, key: str) -> Any:
    section, dot, name = key.partition(".")
    if dot and section in DOTTED_KEYS:
        return getattr(config, section).get(name)
    return getattr(config, key)
