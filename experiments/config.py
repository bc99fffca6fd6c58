"""Experiment configuration: defaults, YAML files, command-line overrides and validation, in one
place and without Ray, so bad input fails before Ray starts.

Precedence: the model's defaults < YAML file < explicit flags < ``--set key=value`` (applied last).
"""

from __future__ import annotations

import difflib
import re
import time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rllib_society import AUCTIONS, DROPOUT_UNITS

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


def _load_yaml(text: str):
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 (a SafeLoader subclass)


#: What trains: a society of bidders, or one PPO policy choosing among the same primitives.
ALGOS = ("society", "monolithic")
#: How a society samples and learns (`SocietyPPOConfig`): the society's batched env runner and
#: learner, or RLlib's own multi-agent runner and PPO learner (the reference path).
SAMPLERS = ("fast", "stock")
#: RLlib's batch modes.
BATCH_MODES = ("truncate_episodes", "complete_episodes")
#: Bid networks' activations RLlib's default model accepts.
ACTIVATIONS = ("relu", "tanh", "linear", "silu", "elu")


class ExperimentConfig(BaseModel):
    """Everything one training run needs. Names follow RLlib for RLlib concepts and the paper
    for society concepts; the YAML keys, ``--set`` keys and flags use the same names. A pydantic
    model: unknown keys, wrong types and out-of-range values are refused on construction and on
    assignment (`load_config` words the errors); `validate` adds the checks that touch files and
    make the env."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True,
                              use_attribute_docstrings=True)

    # Environment
    env: str = "Chain-v0"
    """gymnasium id of the wrapped env (Discrete actions), or ``module:EnvId``."""
    env_config: dict = Field(default_factory=dict)
    """Constructor arguments of the env (``--set env_config.<name>=<value>``)."""

    # What trains
    algo: Literal[ALGOS] = "society"
    """"society" (bidders in an auction) or "monolithic" (one PPO policy whose actions are the
    primitives: the paper's baseline; the society keys below are then unused)."""

    sampler: Literal[SAMPLERS] = "fast"
    """How a society samples and learns: "fast" (its batched env runner and learner) or "stock"
    (RLlib's own multi-agent env runner and PPO learner, the reference path; slower)."""

    # Society (spec sections 1-2)
    auction: Literal[AUCTIONS] = "ccv"
    """Utility the bidders are trained on: v, ccv, bb or env."""
    clones: Annotated[int, Field(ge=1)] = 2
    """Agent ids per primitive sharing one policy; 1 = solitary society."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Probability that an agent id sits out a whole training episode (two always stay)."""
    dropout_unit: Literal[DROPOUT_UNITS] = "agent"
    """What sits out together: "agent" (each id on its own, the spec's) or "primitive" (all its
    clones, so every active primitive bids against its twin: the truthful pull of a Vickrey
    auction reaches low-value primitives too)."""
    gamma: Annotated[float, Field(ge=0, le=1)] = 0.99
    """The society's discount, applied inside the utilities (PPO's own gamma is 0)."""
    reward_scale: Annotated[float, Field(gt=0)] = 1.0
    """Env rewards are multiplied by this before the auction; returns stay in env units."""
    options: list[str] = Field(default_factory=list)
    """Pre-trained options as the primitives (RLlib checkpoints of single-agent policies), in
    place of the env's actions; each runs until it emits `option_done_action`."""
    option_done_action: int | None = None
    """The env action with which an option says it is done (MiniGrid's done: 6)."""
    option_max_steps: Annotated[int, Field(gt=0)] | None = None
    """Optional cap on one option's env steps (else the env's time limit ends it)."""

    # Bidder networks (RLlib's default PPO module with Beta bids)
    fcnet_hiddens: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [16])
    fcnet_activation: Literal[ACTIVATIONS] = "relu"
    conv_filters: list | None = None
    """CNN encoder for image observations, RLlib's [[channels, kernel, stride], ...]."""
    head_fcnet_hiddens: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)
    """Hidden layers of the bid (policy) and value heads after the encoder."""
    vf_share_layers: bool = False
    """Value function shares the encoder (halves the CNN cost per step on images)."""

    # PPO (memoryless bidders: advantage = u_t - V(s_t))
    standardize_advantages: bool = True
    """Standardize advantages per primitive as RLlib's GAE does per policy; false gives the spec's exact
    u_t - V(s_t). Measured no better on Bandit or Chain (README), so RLlib's default stays."""
    lr: float | list = 1e-3
    """Learning rate, or RLlib's schedule [[env_step, lr], ...] (linear in between; starts at 0)."""
    entropy_coeff: Annotated[float, Field(ge=0)] = 0.0
    clip_param: Annotated[float, Field(gt=0)] = 0.2
    vf_loss_coeff: Annotated[float, Field(ge=0)] = 1.0
    grad_clip: Annotated[float, Field(gt=0)] = 40.0
    num_epochs: Annotated[int, Field(gt=0)] = 5
    minibatch_size: Annotated[int, Field(gt=0)] = 128
    """Samples per SGD step of each policy: of each primitive in a society (its clones' bids of
    minibatch_size / clones auction steps), of env steps for the monolithic baseline."""
    train_batch_size_per_learner: Annotated[int, Field(gt=0)] = 400

    # Run
    stop_timesteps: Annotated[int, Field(gt=0)] = 60_000
    """Env steps to train for."""
    stop_iters: Annotated[int, Field(gt=0)] | None = None
    """Optional cap on training iterations."""
    stop_reward: float | None = None
    """Optional: stop once the mean env return of training episodes reaches this."""
    target_return: float | None = None
    """Greedy return that counts as solved (e.g. the optimal return); results report the env
    steps at which the greedy society first reached it."""
    num_env_runners: Annotated[int, Field(ge=0)] = 0
    """Remote env runners per trial (0: the trial's own process samples)."""
    num_envs_per_env_runner: Annotated[int, Field(gt=0)] = 8
    rollout_fragment_length: int | str = "auto"
    """Steps per env per sample() call: "auto" (RLlib's: the train batch over all envs) or an
    integer. A society's auction cut at a fragment's end is carried into the next chunk."""
    batch_mode: Literal[BATCH_MODES] = "truncate_episodes"
    """RLlib's: "truncate_episodes" (fragments) or "complete_episodes" (whole episodes)."""
    num_cpus_per_env_runner: Annotated[float, Field(gt=0)] = 1.0
    """CPUs Ray reserves per remote env runner (fractions let 2 runners share a 2-core machine)."""
    env_runner_restart_delay_s: Annotated[float, Field(ge=0)] = 1.0
    """Seconds before RLlib restarts an env runner that died (RLlib's own default is 60)."""
    seed: int = 0
    eval_episodes: Annotated[int, Field(gt=0)] = 1
    """Greedy evaluation episodes per iteration (each agent bids its mean bid)."""
    init_checkpoint: str | None = None
    """Start from the trained modules of this run, trial or checkpoint folder (weights only, a
    fresh optimizer): e.g. transfer a pre-trained society to a new task. Module ids must match."""
    checkpoint_frequency: Annotated[int, Field(ge=0)] = 0
    """Checkpoint every N iterations (0: only at the end, if checkpoint_at_end)."""
    checkpoint_at_end: bool = True
    output: str | None = None
    """Output folder; default runs/{env}__{auction}__c{clones}__s{seed}__{time}."""
    address: str | None = None
    """Address of an existing Ray cluster; None starts an embedded local Ray."""
    storage_path: str | None = None
    """Where Tune keeps trial folders and checkpoints: a folder every node of the cluster can
    reach (e.g. NFS). None keeps them inside the output folder."""

    def society_config(self) -> dict[str, Any]:
        """The `AuctionEnv` config (plain values, so a Tune grid can replace them)."""
        return {
            "env": importable_env_id(self.env),
            "env_config": dict(self.env_config),
            "auction": self.auction,
            "clones": self.clones,
            "dropout": self.dropout,
            "dropout_unit": self.dropout_unit,
            "gamma": self.gamma,
            "reward_scale": self.reward_scale,
            "eval_episodes": self.eval_episodes,
            "options": [str(Path(p).expanduser().resolve()) for p in self.options],
            "option_done_action": self.option_done_action,
            "option_max_steps": self.option_max_steps,
        }

    def output_dir(self) -> Path:
        """The run's output folder, absolute."""
        if self.output:
            return Path(self.output).expanduser().resolve()
        name = f"{self.env.replace(':', '_')}__{self.auction}__c{self.clones}__s{self.seed}"
        return Path("runs", f"{name}__{time.strftime('%Y%m%d-%H%M%S')}").resolve()

    def experiment_dir(self) -> Path:
        """Tune's experiment folder: the output folder, or its namesake under `storage_path`."""
        if self.storage_path is None:
            return self.output_dir()
        return Path(self.storage_path).expanduser().resolve() / self.output_dir().name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @field_validator("lr")
    @classmethod
    def _lr(cls, lr):
        if not _is_lr(lr):
            raise ValueError("a float > 0 or a schedule [[0, lr], [env_step, lr], ...]")
        return lr

    @field_validator("conv_filters")
    @classmethod
    def _conv_filters(cls, filters):
        if filters is not None and not _is_conv_filters(filters):
            raise ValueError("None or a list of [channels, kernel, stride] with positive integers")
        return filters

    @field_validator("rollout_fragment_length")
    @classmethod
    def _fragment(cls, length):
        if length != "auto" and not (isinstance(length, int) and not isinstance(length, bool) and length > 0):
            raise ValueError('"auto" or an integer > 0')
        return length

    @model_validator(mode="after")
    def _consistent(self):
        if not (self.standardize_advantages or self.sampler == "fast"):
            raise _FieldError("standardize_advantages", self.standardize_advantages,
                              "true with sampler: stock (RLlib's GAE always standardizes advantages)")
        if self.minibatch_size > self.train_batch_size_per_learner:
            raise _FieldError("minibatch_size", self.minibatch_size,
                              f"<= train_batch_size_per_learner ({self.train_batch_size_per_learner})")
        return self


class _FieldError(ValueError):
    """A cross-field check's error, naming the field, its value and what is allowed."""

    def __init__(self, name: str, value: Any, allowed: str):
        super().__init__(f"{name}={value!r} is not allowed; {name} must be {allowed}.")


CONFIG_KEYS = tuple(ExperimentConfig.model_fields)


#: Optional YAML key holding a grid ``{config key: [values, ...]}``: one Tune trial per point
#: (e.g. the three TwoRooms primitive tasks trained side by side by `run.py`).
GRID_KEY = "grid"


def load_grid(path: str | Path | None) -> dict[str, list]:
    """The YAML's `GRID_KEY` mapping (empty without one), checked: known keys, non-empty lists."""
    if path is None or not Path(path).is_file():
        return {}
    grid = (_load_yaml(Path(path).read_text()) or {}).get(GRID_KEY) or {}
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
            constructor argument of the env), applied last.

    Raises:
        ValueError: naming the bad key or value and what is allowed.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {str(path)!r} does not exist.")
        loaded = _load_yaml(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {str(path)!r} must hold a mapping of config keys.")
        loaded.pop(GRID_KEY, None)  # see load_grid
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for item in sets or []:
        key, value = parse_set(item)
        if key.startswith("env_config."):
            values["env_config"] = {**values.get("env_config", {}), key.split(".", 1)[1]: value}
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
        return key.strip(), _load_yaml(raw)
    except yaml.YAMLError as error:
        raise ValueError(f"--set {key}: cannot parse value {raw!r}: {error}") from None


def check_key(key: str) -> None:
    """Raises ValueError for a key ExperimentConfig does not have, suggesting close ones."""
    if key in CONFIG_KEYS:
        return
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown config key {key!r}.{hint} Allowed: {', '.join(CONFIG_KEYS)}.")


def validate(config: ExperimentConfig) -> None:
    """The checks beyond the model's types and ranges: the files a config names exist and the
    env suits a society.

    Raises:
        ValueError: naming the field, the bad value and what is allowed.
    """
    def require(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            raise _FieldError(name, getattr(config, name), allowed)

    if config.options:
        missing = [p for p in config.options if not Path(p).expanduser().exists()]
        require(not missing, "options", f"RLlib checkpoints that exist (missing: {', '.join(map(str, missing))})")
        require(config.option_done_action is not None, "option_done_action",
                "the env action with which an option says done (MiniGrid: 6)")
    if config.init_checkpoint is not None:
        from rllib_society import latest_checkpoint

        try:
            latest_checkpoint(config.init_checkpoint)
        except ValueError as error:
            raise ValueError(f"init_checkpoint={config.init_checkpoint!r} is not allowed: {error} It "
                             f"must be a run, trial or checkpoint folder of a finished run.") from None
    check_env(config.env, config.env_config)


def make_config(values: dict[str, Any]) -> ExperimentConfig:
    """`ExperimentConfig(**values)`, with pydantic's errors reworded as `ValueError`s naming
    the field, its value and what is allowed (unknown keys with the nearest names)."""
    for key in values:
        check_key(key)
    try:
        return ExperimentConfig(**values)
    except ValidationError as error:
        raise ValueError(_explain(error.errors()[0], values)) from None


def _explain(error: dict, values: dict[str, Any]) -> str:
    """One pydantic error as ``field=value ...; field must be <what is allowed>.``"""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _FieldError):  # a cross-field check (`_consistent`)
        return str(cause)
    name = str(error["loc"][0])
    value = values.get(name, error.get("input"))
    field = ExperimentConfig.model_fields[name]
    if error["type"].endswith("_type"):
        return f"{name}={value!r} has type {type(value).__name__}; {name} must be {_type_name(field.annotation)}."
    allowed = str(cause) if cause is not None else _allowed(field.annotation, field.metadata)
    return f"{name}={value!r} is not allowed; {name} must be {allowed}."


def _type_name(annotation) -> str:
    """``int``, ``int | None``, ``list``: what a field's values must be, in the YAML's terms."""
    if get_origin(annotation) is Annotated:
        return _type_name(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return " | ".join(_type_name(arg) for arg in get_args(annotation))
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(str, get_args(annotation)))
    if annotation is type(None):
        return "None"
    return getattr(get_origin(annotation) or annotation, "__name__", str(annotation))


def _allowed(annotation, metadata: list) -> str:
    """What a field allows, from its type and bounds: ``one of a, b``, ``an integer >= 1``,
    ``in [0, 1)``, ``a list of positive integers``, ``None or > 0``."""
    if get_origin(annotation) in (Union, UnionType):
        parts = [_allowed(arg, []) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join((["None"] if type(None) in get_args(annotation) else []) + parts)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(map(str, get_args(annotation)))
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (Any,)
        return "a list of positive integers" if get_origin(item) is Annotated else "a list"
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata = [*metadata, *(m for info in extra for m in getattr(info, "metadata", [info]))]
    bounds = {key: getattr(m, key) for m in metadata for key in ("ge", "gt", "le", "lt") if hasattr(m, key)}
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else None
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else None
    if low and high:
        return f"in {low}, {high}"
    sign = next((f"{op} {bounds[key]}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                 if key in bounds), "")
    return ("an integer " + sign if annotation is int else sign) or _type_name(annotation)


def _is_lr(lr: float | list) -> bool:
    if not isinstance(lr, list):
        return lr > 0
    points = [p for p in lr if isinstance(p, list) and len(p) == 2]
    return (
        len(points) == len(lr) > 0
        and points[0][0] == 0
        and all(isinstance(t, int) and isinstance(v, (int, float)) and v > 0 for t, v in points)
        and all(a[0] < b[0] for a, b in zip(points, points[1:]))
    )


def _is_conv_filters(filters: list) -> bool:
    def positive(value) -> bool:
        values = value if isinstance(value, list) else [value]
        return all(isinstance(v, int) and v > 0 for v in values)

    return len(filters) > 0 and all(
        isinstance(layer, list) and len(layer) == 3 and all(positive(v) for v in layer)
        for layer in filters
    )


def importable_env_id(env_id: str) -> str:
    """``envs:<id>`` for this project's own ids (else `env_id`): gymnasium imports the ``envs``
    package, which registers them, in whichever process makes the env (a remote env runner too),
    so the library needs no import of the project's envs."""
    import envs

    return f"envs:{env_id}" if env_id in envs.ENV_IDS else env_id


def check_env(env_id: str, env_config: dict) -> None:
    """Makes the env once to check that it exists and has a Discrete action space."""
    import gymnasium as gym

    import envs  # registers the project's ids in this process
    from rllib_society import check_base_env, make_base_env

    try:
        env = make_base_env(env_id, env_config)
    except (gym.error.Error, ModuleNotFoundError, AttributeError) as error:
        project_ids = ", ".join(envs.ENV_IDS)
        raise ValueError(
            f"env={env_id!r}: cannot make it ({error}). Allowed: a registered gymnasium id "
            f"(this project's: {project_ids}) or 'module:EnvId'."
        ) from None
    except TypeError as error:
        raise ValueError(f"env_config={env_config!r} does not fit env {env_id!r}: {error}") from None
    try:
        check_base_env(env, env_id)
    finally:
        env.close()
