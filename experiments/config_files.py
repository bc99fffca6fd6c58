"""Config files and command-line overrides: YAML read as YAML 1.2 (``1e-3`` is a float),
``--set key=value`` parsing, an optional grid, and `load_config`, which merges them and returns a
validated `ExperimentConfig` before Ray starts.

Precedence: the model's defaults < YAML file < explicit flags < ``--set key=value`` (applied last).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from experiments.config import DOTTED_KEYS, ExperimentConfig, check_key, make_config
from experiments.preflight import validate


class _YamlLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``1e-3`` is a string; read it as a float (YAML 1.2)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)
#: Integers keep their own resolver (registered first for the same characters).
_YamlLoader.yaml_implicit_resolvers = {
    first: sorted(resolvers, key=lambda r: r[0] != "tag:yaml.org,2002:int")
    for first, resolvers in _YamlLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str):
    """Parses YAML text as YAML 1.2 numbers (``1e-3`` is a float)."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader subclass)


#: Optional YAML key holding a grid ``{config key: [values, ...]}``: one Tune trial per point
#: (e.g. the three TwoRooms primitive tasks trained side by side by `run.py`).
GRID_KEY = "grid"


def load_grid(path: str | Path | None) -> dict[str, list]:
    """The YAML's `GRID_KEY` mapping (empty without one), checked: known keys, non-empty lists."""
    if path is None or not Path(path).is_file():
        return {}
    grid = (load_yaml(Path(path).read_text()) or {}).get(GRID_KEY) or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{GRID_KEY} in {path} must map config keys to lists of values.")
    for key, values in grid.items():
        check_key(key.split(".", 1)[0])
        if not isinstance(values, list) or not values:
            raise ValueError(f"{GRID_KEY}.{key} in {path} must be a non-empty list of values.")
    return grid


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> ExperimentConfig:
    """Builds and validates a config.

    Args:
        path: optional YAML file with a flat mapping of config keys.
        overrides: values from explicit flags; None values mean "not given" and are skipped.
        sets: ``key=value`` strings (values parsed as YAML; ``env_config.<name>=<value>`` sets one
            constructor argument of the env, ``rllib.<name>=<value>`` one RLlib setting,
            ``exploration.rate=<value>`` the exploration offers' rate), applied
            last.

    Raises:
        ValueError: naming the bad key or value and what is allowed.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist.")
        loaded = load_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {str(path)!r} must hold a mapping of config keys.")
        loaded.pop(GRID_KEY, None)  # see load_grid
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for item in sets or []:
        key, value = parse_set(item)
        section, dot, name = key.partition(".")
        if dot and section in DOTTED_KEYS:  # env_config.<name>, rllib.<name>, exploration.<name>
            values[section] = {**(values.get(section) or {}), name: value}
        else:
            values[key] = value
    config = make_config(values)
    validate(config)
    return config


def parse_set(item: str) -> tuple[str, Any]:
    """Splits ``key=value`` and parses the value as YAML (so 0.5, true, [16, 16] are typed)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key=value, got {item!r}.")
    try:
        return key.strip(), load_yaml(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"--set {key}: cannot parse value {raw!r}: {error}") from None
