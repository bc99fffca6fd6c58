"""Experiment configuration: defaults, YAML files, command-line overrides and validation, in one
place and without Ray, so bad input fails before Ray starts.

Precedence: dataclass defaults < YAML file < explicit flags < ``--set key=value`` (applied last).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


@dataclass
class ExperimentConfig:
    """Everything one training run needs. Names follow RLlib for RLlib concepts and the paper
    for society concepts; the YAML keys, ``--set`` keys and flags use the same names."""

    # Environment
    env: str = "Chain-v0"
    """gymnasium id of the wrapped env (Discrete actions), or ``module:EnvId``."""
    env_config: dict = field(default_factory=dict)
    """Constructor arguments of the env (``--set env_config.<name>=<value>``)."""

    # What trains
    algo: str = "society"
    """"society" (bidders in an auction) or "monolithic" (one PPO policy whose actions are the
    primitives: the paper's baseline; the society keys below are then unused)."""

    sampler: str = "fast"
    """How a society samples and learns: "fast" (its batched env runner and learner) or "stock"
    (RLlib's own multi-agent env runner and PPO learner, the reference path; slower)."""

    # Society (spec sections 1-2)
    auction: str = "ccv"
    """Utility the bidders are trained on: v, ccv, bb or env."""
    clones: int = 2
    """Agent ids per primitive sharing one policy; 1 = solitary society."""
    dropout: float = 0.0
    """Probability that an agent id sits out a whole training episode (two always stay)."""
    dropout_unit: str = "agent"
    """What sits out together: "agent" (each id on its own, the spec's) or "primitive" (all its
    clones, so every active primitive bids against its twin: the truthful pull of a Vickrey
    auction reaches low-value primitives too)."""
    gamma: float = 0.99
    """The society's discount, applied inside the utilities (PPO's own gamma is 0)."""
    reward_scale: float = 1.0
    """Env rewards are multiplied by this before the auction; returns stay in env units."""
    options: list = field(default_factory=list)
    """Pre-trained options as the primitives (RLlib checkpoints of single-agent policies), in
    place of the env's actions; each runs until it emits `option_done_action`."""
    option_done_action: int | None = None
    """The env action with which an option says it is done (MiniGrid's done: 6)."""
    option_max_steps: int | None = None
    """Optional cap on one option's env steps (else the env's time limit ends it)."""

    # Bidder networks (RLlib's default PPO module with Beta bids)
    fcnet_hiddens: list = field(default_factory=lambda: [16])
    fcnet_activation: str = "relu"
    conv_filters: list | None = None
    """CNN encoder for image observations, RLlib's [[channels, kernel, stride], ...]."""
    head_fcnet_hiddens: list = field(default_factory=list)
    """Hidden layers of the bid (policy) and value heads after the encoder."""
    vf_share_layers: bool = False
    """Value function shares the encoder (halves the CNN cost per step on images)."""

    # PPO (memoryless bidders: advantage = u_t - V(s_t))
    standardize_advantages: bool = True
    """Standardize advantages per primitive as RLlib's GAE does per policy; false gives the spec's exact
    u_t - V(s_t). Measured no better on Bandit or Chain (README), so RLlib's default stays."""
    lr: float | list = 1e-3
    """Learning rate, or RLlib's schedule [[env_step, lr], ...] (linear in between; starts at 0)."""
    entropy_coeff: float = 0.0
    clip_param: float = 0.2
    vf_loss_coeff: float = 1.0
    grad_clip: float = 40.0
    num_epochs: int = 5
    minibatch_size: int = 128
    """Samples per SGD step of each policy: of each primitive in a society (its clones' bids of
    minibatch_size / clones auction steps), of env steps for the monolithic baseline."""
    train_batch_size_per_learner: int = 400

    # Run
    stop_timesteps: int = 60_000
    """Env steps to train for."""
    stop_iters: int | None = None
    """Optional cap on training iterations."""
    stop_reward: float | None = None
    """Optional: stop once the mean env return of training episodes reaches this."""
    target_return: float | None = None
    """Greedy return that counts as solved (e.g. the optimal return); results report the env
    steps at which the greedy society first reached it."""
    num_env_runners: int = 0
    """Remote env runners per trial (0: the trial's own process samples)."""
    num_envs_per_env_runner: int = 8
    rollout_fragment_length: int | str = "auto"
    """Steps per env per sample() call: "auto" (RLlib's: the train batch over all envs) or an
    integer. A society's auction cut at a fragment's end is carried into the next chunk."""
    batch_mode: str = "truncate_episodes"
    """RLlib's: "truncate_episodes" (fragments) or "complete_episodes" (whole episodes)."""
    num_cpus_per_env_runner: float = 1.0
    """CPUs Ray reserves per remote env runner (fractions let 2 runners share a 2-core machine)."""
    env_runner_restart_delay_s: float = 1.0
    """Seconds before RLlib restarts an env runner that died (RLlib's own default is 60)."""
    seed: int = 0
    eval_episodes: int = 1
    """Greedy evaluation episodes per iteration (each agent bids its mean bid)."""
    init_checkpoint: str | None = None
    """Start from the trained modules of this run, trial or checkpoint folder (weights only, a
    fresh optimizer): e.g. transfer a pre-trained society to a new task. Module ids must match."""
    checkpoint_frequency: int = 0
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
        return dataclasses.asdict(self)


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(ExperimentConfig))
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(ExperimentConfig)}


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
    for key in values:
        check_key(key)
    config = ExperimentConfig(**values)
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
    """Checks every value's type and range, then that the env suits a society.

    Raises:
        ValueError: naming the field, the bad value and what is allowed.
    """
    for name, annotation in _FIELD_TYPES.items():
        _check_type(name, getattr(config, name), annotation)

    def require(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            raise ValueError(f"{name}={getattr(config, name)!r} is not allowed; {name} must be {allowed}.")

    require(config.algo in ALGOS, "algo", f"one of {', '.join(ALGOS)}")
    require(config.sampler in SAMPLERS, "sampler", f"one of {', '.join(SAMPLERS)}")
    require(config.standardize_advantages or config.sampler == "fast", "standardize_advantages",
            "true with sampler: stock (RLlib's GAE always standardizes advantages)")
    require(config.batch_mode in BATCH_MODES, "batch_mode", f"one of {', '.join(BATCH_MODES)}")
    require(config.rollout_fragment_length == "auto" or (
        isinstance(config.rollout_fragment_length, int) and config.rollout_fragment_length > 0),
        "rollout_fragment_length", '"auto" or an integer > 0')
    require(config.auction in AUCTIONS, "auction", f"one of {', '.join(AUCTIONS)}")
    require(config.clones >= 1, "clones", "an integer >= 1")
    require(0.0 <= config.dropout < 1.0, "dropout", "in [0, 1)")
    require(config.dropout_unit in DROPOUT_UNITS, "dropout_unit", f"one of {', '.join(DROPOUT_UNITS)}")
    require(0.0 <= config.gamma <= 1.0, "gamma", "in [0, 1]")
    require(config.reward_scale > 0, "reward_scale", "> 0")
    require(config.fcnet_activation in ACTIVATIONS, "fcnet_activation", f"one of {', '.join(ACTIVATIONS)}")
    require(all(isinstance(h, int) and h > 0 for h in config.fcnet_hiddens), "fcnet_hiddens",
            "a list of positive integers")
    require(all(isinstance(h, int) and h > 0 for h in config.head_fcnet_hiddens),
            "head_fcnet_hiddens", "a list of positive integers")
    require(config.conv_filters is None or _is_conv_filters(config.conv_filters), "conv_filters",
            "None or a list of [channels, kernel, stride] with positive integers")
    require(_is_lr(config.lr), "lr", "a float > 0 or a schedule [[0, lr], [env_step, lr], ...]")
    for name in ("clip_param", "grad_clip", "stop_timesteps", "num_epochs", "minibatch_size",
                 "train_batch_size_per_learner", "num_envs_per_env_runner", "eval_episodes"):
        require(getattr(config, name) > 0, name, "> 0")
    require(config.num_cpus_per_env_runner > 0, "num_cpus_per_env_runner", "> 0")
    for name in ("entropy_coeff", "vf_loss_coeff", "num_env_runners", "checkpoint_frequency",
                 "env_runner_restart_delay_s"):
        require(getattr(config, name) >= 0, name, ">= 0")
    require(config.stop_iters is None or config.stop_iters > 0, "stop_iters", "None or > 0")
    require(config.minibatch_size <= config.train_batch_size_per_learner, "minibatch_size",
            f"<= train_batch_size_per_learner ({config.train_batch_size_per_learner})")
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
    require(config.option_max_steps is None or config.option_max_steps > 0, "option_max_steps", "None or > 0")
    check_env(config.env, config.env_config)


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


def _check_type(name: str, value: Any, annotation: str) -> None:
    allowed = {
        "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
        "list": (list,), "dict": (dict,),
    }
    options = [part.strip() for part in str(annotation).split("|")]
    if value is None and "None" in options:
        return
    types = tuple(t for option in options for t in allowed.get(option, ()))
    # bool is an int subclass: only a bool field takes True/False.
    if isinstance(value, types) and not (isinstance(value, bool) and "bool" not in options):
        return
    raise ValueError(f"{name}={value!r} has type {type(value).__name__}; {name} must be {annotation}.")
