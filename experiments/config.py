"""The experiment config's schema: every key with its type, bounds, default and doc
(`ExperimentConfig`, a pydantic model), and its errors worded as "field=value is not allowed;
field must be <what is allowed>" (`make_config`). No Ray, no files: YAML and ``--set`` are
`config_files`, the checks that touch disk or make the env are `preflight`.
"""

from __future__ import annotations

import difflib
import time
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from envs import importable_env_id
from rllib_society import SAMPLERS, FieldError, check_society_settings, retired_reward_scale

#: What trains: a society of bidders, or one PPO policy choosing among the same primitives.
ALGOS = ("society", "monolithic")
#: RLlib's batch modes.
BATCH_MODES = ("truncate_episodes", "complete_episodes")
#: Keys holding a mapping that ``--set`` and grids reach one entry at a time: ``env_config.<name>``.
DOTTED_KEYS = ("env_config", "rllib", "exploration")
#: Bid networks' activations RLlib's default model accepts.
ACTIVATIONS = ("relu", "tanh", "linear", "silu", "elu")


class ExperimentConfig(BaseModel):
    """Everything one training run needs. Names follow RLlib for RLlib concepts and the paper
    for society concepts; the YAML keys, ``--set`` keys and flags use the same names. A pydantic
    model: unknown keys, wrong types and out-of-range values are refused on construction and on
    assignment (`make_config` words the errors); `preflight.validate` adds the checks that touch
    files and make the env."""

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

    # The society's keys (sampler to option_observation) are typed Any: the library checks them
    # (`check_society_settings`), so that the YAML and `.society(...)` word their errors alike.
    sampler: Any = "fast"
    """How a society samples and learns: "fast" (its batched env runner and learner) or "stock"
    (RLlib's own multi-agent env runner and PPO learner, the reference path; slower)."""

    # Society (spec sections 1-2)
    auction: Any = "ccv"
    """Utility the bidders are trained on: v, ccv, bb or env."""
    clones: Any = 2
    """Agent ids per primitive sharing one policy (an integer >= 1; 1 = solitary society)."""
    dropout: Any = 0.0
    """Probability that an agent id sits out a whole training episode (two always stay)."""
    dropout_unit: Any = "agent"
    """What sits out together: "agent" (each id on its own, the spec's) or "primitive" (all its
    clones, so every active primitive bids against its twin: the truthful pull of a Vickrey
    auction reaches low-value primitives too)."""
    gamma: Any = 0.99
    """The society's discount in [0, 1], applied inside the utilities (PPO's own gamma is 0)."""
    value_range: Any = None
    """[lo, hi]: the env values that bids 0 and 1 stand for, b = (Q - lo) / (hi - lo), with the
    rewards mapped so that the optimal policy is kept (`rllib_society.value_range`). None: [0, 1]
    widened to hold Q* (envs with a transition table P), else every return the env's reward
    range and time limit allow. "adaptive": no range, Gaussian bids on the real line in env units,
    learned relative to a running scale of the society's values (`rllib_society.value_scale`;
    sampler: fast). Reports stay in env units. Replaces reward_scale: s, which is [0, 1/s]."""
    truncation: Any = "end"
    """What a time-limit cut means: "end" (the end of the task: the cut auction's lookahead is 0,
    as in the paper's code; the monolithic baseline treats it as a termination) or "bootstrap"
    (only a cut: the cut auction is paid the cut state's price, as if the episode went on, and
    the baseline's PPO bootstraps; sampler: fast only). Q* and the bid error follow it."""
    lookahead: Any = "sampled"
    """Which bids price the state a winner sells: "sampled" (the clearing price of the sampled
    bids, the paper's) or "mean" (of the bidders' mean bids: a state sells for max_k Q(s', k)
    at the truthful equilibrium, without the bias of the bids' noise; sampler: fast)."""
    exploration: Any = None
    """Exploration inside the auction: None (the paper's auction) or {kind: offers or scored,
    rate: r, bonus: b}, a share r of auctions being offers to one primitive (at a random price, or
    scored on its bid), which keep every primitive's bid truthful, not only the winners', and a
    count bonus b / sqrt(n) env reward units paid by the market for the n-th time a primitive
    acts in a state (Discrete states; `rllib_society.exploration`); r and b may be schedules
    [[env_steps, x], ...]. Greedy evaluation never explores."""
    options: list[str] = Field(default_factory=list)
    """Pre-trained options as the primitives (run, trial or checkpoint folders of single-agent
    policies, or of societies over the env's actions), in place of the env's actions; each runs
    until it emits `option_done_action`."""
    option_done_action: Any = None
    """The env action, or list of actions, with which an option says it is done (MiniGrid's
    done: 6; Taxi's pick-up and drop-off: [4, 5])."""
    option_max_steps: Any = None
    """Optional cap on one option's env steps (else the env's time limit ends it)."""
    option_bids: Any = "greedy"
    """How an option that is a society bids: its mean bids, or samples (as in its training)."""
    option_observation: Any = None
    """What the options observe of a state, if not the state: a function's ``module:name``
    (Taxi's sub-task options: ``envs.taxi_tasks:taxi_cell_observation``, the taxi's cell)."""
    baseline_discount: Literal["semi_mdp", "per_step"] = "semi_mdp"
    """How the monolithic baseline over options discounts what follows an option of L env steps:
    by gamma ** L as the society does ("semi_mdp"), or by one gamma per option (RLlib's GAE;
    the baseline before commit 1dc24de)."""

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
    u_t - V(s_t). Measured no better on Bandit or Chain (docs/results.md), so RLlib's default stays."""
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
    eval_episodes: Any = 1
    """Greedy evaluation episodes per iteration (each agent bids its mean bid)."""
    eval_interval: Any = 1
    """The greedy evaluation runs after every N-th iteration (a run's last iteration is always
    evaluated, from its final checkpoint): long episodes (Taxi) make evaluation dearer than
    training."""
    eval_max_steps: Any = None
    """Env steps after which a greedy evaluation episode is cut and counted as a time-out
    (``greedy_timeouts``), so a policy that never ends cannot stall training. None: the env's
    time limit, else 1,000."""
    init_checkpoint: str | None = None
    """Start from the trained modules of this run, trial or checkpoint folder (weights only, a
    fresh optimizer): e.g. transfer a pre-trained society to a new task. Module ids must match."""
    checkpoint_frequency: Annotated[int, Field(ge=0)] = 0
    """Checkpoint every N iterations (0: only at the end, if checkpoint_at_end)."""
    checkpoint_at_end: bool = True
    checkpoints_to_keep: Annotated[int, Field(ge=1)] | None = 2
    """How many of the newest checkpoints Tune keeps (None: all)."""
    output: str | None = None
    """Output folder; default runs/{env}__{auction}__c{clones}__s{seed}__{time}."""
    address: str | None = None
    """Address of an existing Ray cluster; None starts an embedded local Ray."""
    rllib: dict[str, Any] = Field(default_factory=dict)
    """Any other setting of RLlib's `PPOConfig`, by its attribute name, applied last (as
    ``PPOConfig.update_from_dict`` does): ``rllib: {num_learners: 2, kl_coeff: 0.0}`` or
    ``--set rllib.num_learners=2``. Names are checked against `PPOConfig` before Ray starts; the
    settings this config or the society owns are refused with the key to use instead."""
    row_ledger: str | None = None
    """Folder where the fast path's env runners and learners write the identities of the rows
    they hand over and train (`rllib_society.rows`; `benchmarks/chaos.py` compares them). None:
    not written."""
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
            "value_range": self.value_range,
            "truncation": self.truncation,
            "lookahead": self.lookahead,
            "exploration": self.exploration,
            "eval_episodes": self.eval_episodes,
            "eval_interval": self.eval_interval,
            "eval_max_steps": self.eval_max_steps,
            "options": [str(Path(p).expanduser().resolve()) for p in self.options],
            "option_done_action": self.option_done_action,
            "option_max_steps": self.option_max_steps,
            "option_bids": self.option_bids,
            "option_observation": self.option_observation,
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
        # The society's keys: the library's own check (`.society(...)` words its errors the same).
        check_society_settings({key: getattr(self, key) for key in SOCIETY_KEYS}, self.sampler)
        if not (self.standardize_advantages or self.sampler == "fast"):
            raise FieldError("standardize_advantages", self.standardize_advantages,
                             "true with sampler: stock (RLlib's GAE always standardizes advantages)")
        if self.minibatch_size > self.train_batch_size_per_learner:
            raise FieldError("minibatch_size", self.minibatch_size,
                             f"<= train_batch_size_per_learner ({self.train_batch_size_per_learner})")
        if self.eval_interval > 1 and not self.checkpoint_at_end:
            raise FieldError("eval_interval", self.eval_interval,
                             "1 with checkpoint_at_end: false (the last iteration is evaluated from the final checkpoint)")
        return self


#: The keys of the society itself (`SocietyPPOConfig.society`), checked by the library.
SOCIETY_KEYS = ("env", "env_config", "auction", "clones", "dropout", "dropout_unit", "gamma", "value_range",
                "truncation", "lookahead", "exploration", "eval_episodes", "eval_interval",
                "eval_max_steps", "options", "option_done_action",
                "option_max_steps", "option_bids", "option_observation")
CONFIG_KEYS = tuple(ExperimentConfig.model_fields)


def make_config(values: dict[str, Any]) -> ExperimentConfig:
    """`ExperimentConfig(**values)`, with pydantic's errors reworded as `ValueError`s naming
    the field, its value and what is allowed (unknown keys with the nearest names)."""
    if "reward_scale" in values:  # retired at commit 52aff44
        raise retired_reward_scale(values["reward_scale"])
    for key in values:
        check_key(key)
    try:
        return ExperimentConfig(**values)
    except ValidationError as error:
        raise ValueError(_explain(error.errors()[0], values)) from None


def _explain(error: dict, values: dict[str, Any]) -> str:
    """One pydantic error as ``field=value ...; field must be <what is allowed>.``"""
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):  # a cross-field check (`_consistent`)
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


def check_key(key: str) -> None:
    """Raises ValueError for a key ExperimentConfig does not have, suggesting close ones."""
    if key in CONFIG_KEYS:
        return
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown config key {key!r}.{hint} Allowed: {', '.join(CONFIG_KEYS)}.")
