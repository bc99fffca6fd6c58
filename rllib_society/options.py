"""Pre-trained options as primitives (spec sections 1 and 4, TwoRooms): a frozen policy that,
when its primitive wins an auction, acts on the env until it emits one of its ``done`` actions,
the env ends, or the step budget is spent. Winning an option is one auction step; its reward is
the discounted env return of its steps, sum_k gamma^k r_k, and its discount is gamma^L for L
steps, exactly what `auction.episode_utilities` expects per auction step. The undiscounted sum
goes with it (`OPTION_RETURN`): what the env paid, for the reported returns.

An option is a single-agent policy (`ModulePolicy`) or a whole trained society (`SocietyPolicy`):
a society of societies, whose inner auctions are kept in the step's info (`INNER_AUCTIONS`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rllib_society.observations import bidder_observation_space


class Policy(Protocol):
    def act(self, observation: np.ndarray) -> int: ...


@dataclass
class OptionResult:
    """What one option execution did: the state it handed back and its auction-step bookkeeping."""

    state: Any
    reward: float
    """sum_k gamma^k r_k over its env steps."""
    env_return: float
    """sum_k r_k: what the env paid."""
    discount: float
    """gamma ** length."""
    length: int
    terminated: bool
    truncated: bool
    inner_auctions: list[dict] = field(default_factory=list)
    """A society option's auctions, one per env step (`SocietyPolicy.last_auction`)."""


def run_option(env: gym.Env, state: Any, policy: Policy, done_action: int | Collection[int], gamma: float,
               max_steps: int | None = None) -> OptionResult:
    """Runs `policy` on `env` from `state` until it emits `done_action` (or one of them; the env
    still receives it: saying done can be the env's success, as Taxi's drop-off), the env
    terminates or truncates, or `max_steps` env steps are spent."""
    done_actions = done_actions_of(done_action)
    reward, env_return, discount, length, inner = 0.0, 0.0, 1.0, 0, []
    terminated = truncated = False
    while True:
        action = policy.act(state)
        if getattr(policy, "last_auction", None) is not None:
            inner.append(policy.last_auction)
        state, env_reward, terminated, truncated, _ = env.step(action)
        reward += discount * float(env_reward)
        env_return += float(env_reward)
        discount *= gamma
        length += 1
        if terminated or truncated or action in done_actions or length == max_steps:
            return OptionResult(state, reward, env_return, discount, length, terminated, truncated, inner)


def done_actions_of(done_action: int | Collection[int]) -> frozenset[int]:
    """The env actions that end an option: `done_action`, one or several."""
    return frozenset([done_action] if isinstance(done_action, (int, np.integer)) else done_action)


#: Info keys of an `OptionsEnv` step: env steps the option took, its discount gamma ** steps,
#: its undiscounted env return, and a society option's own auctions
#: (`SocietyPolicy.last_auction`, one per env step).
OPTION_STEPS = "option_steps"
OPTION_DISCOUNT = "discount"
OPTION_RETURN = "option_return"
INNER_AUCTIONS = "inner_auctions"
#: How a society option bids: its mean bids (the greedy society), or samples of its bid
#: distributions (as it bid in training).
OPTION_BIDS = ("greedy", "sampled")


class OptionsEnv(gym.Wrapper):
    """The env with options for actions: action k runs option k (`run_option`) and the step
    returns its discounted reward, with `OPTION_STEPS`, `OPTION_DISCOUNT` and `OPTION_RETURN` in the info. The
    society's primitives, and the monolithic baseline's actions, over the same options."""

    def __init__(self, env: gym.Env, policies: list[Policy], done_action: int | Collection[int], gamma: float,
                 max_steps: int | None = None):
        super().__init__(env)
        self.policies, self.done_action, self.gamma, self.max_steps = policies, done_action, gamma, max_steps
        self.action_space = gym.spaces.Discrete(len(policies))

    def reset(self, **kwargs):
        self.state, info = self.env.reset(**kwargs)
        return self.state, info

    def step(self, action: int):
        done = run_option(self.env, self.state, self.policies[int(action)], self.done_action,
                          self.gamma, self.max_steps)
        self.state = done.state
        info = {OPTION_STEPS: done.length, OPTION_DISCOUNT: done.discount, OPTION_RETURN: done.env_return}
        if done.inner_auctions:
            info[INNER_AUCTIONS] = done.inner_auctions
        return done.state, done.reward, done.terminated, done.truncated, info


def option_observation_function(name: str) -> Callable[[Any], np.ndarray]:
    """The function ``module:name`` that maps the env's state to what the options observe (a
    state abstraction: Taxi's sub-task options see only the taxi's cell). Raises ValueError
    naming `option_observation` unless it imports to a callable."""
    from importlib import import_module

    module, _, attribute = str(name).partition(":")
    try:
        function = getattr(import_module(module), attribute) if module and attribute else None
    except (ImportError, AttributeError):
        function = None
    if not callable(function):
        raise ValueError(f"option_observation={name!r} is not allowed; option_observation must be None or "
                         f"'module:function', a function of the env's state that imports, e.g. "
                         f"'envs.taxi_tasks:taxi_cell_observation'.")
    return function


class ModulePolicy:
    """A frozen RLlib RLModule acting greedily (its most likely action) on ``encode(state)``
    (Discrete states one-hot, as the module saw them in training)."""

    def __init__(self, module, encode: Callable[[Any], np.ndarray] | None = None):
        self.module, self.encode = module, np.asarray if encode is None else encode

    def act(self, observation) -> int:
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            batch = {Columns.OBS: torch.as_tensor(np.asarray(self.encode(observation), dtype=np.float32))[None]}
            logits = self.module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
        return int(logits.argmax(-1)[0])


class SocietyPolicy:
    """A trained society as an option's policy. At each env step every bidder of the society
    bids for the state, the mean of its bid distribution (``greedy``) or a sample (``sampled``),
    and the highest bidder's primitive, an env action, is taken (ties: lowest bidder), as in
    `AuctionEnv`. `last_auction` holds that auction: ``{"bids": per bidder, "winner": primitive}``.

    Args:
        modules: the society's RLModules in primitive order (`load_modules`).
        encode: state -> what a bidder observes (`observations.bidder_observation`).
        clones: bidders per primitive (they share their primitive's bid distribution).
        bids: one of `OPTION_BIDS`.
    """

    def __init__(self, modules: list, encode: Callable[[Any], np.ndarray], clones: int = 1, bids: str = "greedy"):
        if bids not in OPTION_BIDS:
            raise ValueError(f"bids={bids!r} is not allowed; allowed: {', '.join(OPTION_BIDS)}.")
        self.modules, self.encode, self.clones, self.bids = modules, encode, clones, bids
        self.last_auction: dict | None = None

    def act(self, observation) -> int:
        import torch

        from rllib_society.society_module import bid_distribution_of, bid_inputs, value_scale_of

        scale = value_scale_of(self.modules[0])
        with torch.no_grad():
            inputs = bid_inputs(self.modules, torch.as_tensor(self.encode(observation), dtype=torch.float32)[None])
            bids = bid_distribution_of(scale).from_logits(inputs.repeat_interleave(self.clones, dim=1))
            bids = bids.to_deterministic().loc if self.bids == "greedy" else bids.sample()
        bids = bids[0, :, 0].numpy().astype(np.float64)
        if scale is not None:  # bids on the real line, in env units
            bids = scale[0] + scale[1] * bids
        primitive = int(np.argmax(bids)) // self.clones
        self.last_auction = {"bids": bids, "winner": primitive}
        return primitive


def load_option(checkpoint: str | Path, encode: Callable[[Any], np.ndarray], bids: str = "greedy"):
    """The frozen option of a pre-trained run (or trial, or checkpoint): a single-agent policy
    (`ModulePolicy`), or a society of this project (`SocietyPolicy`, bidding by `bids`)."""
    from rllib_society.checkpoints import DEFAULT_MODULE_ID, load_modules, saved_society_config

    modules = load_modules(checkpoint)
    if list(modules) == [DEFAULT_MODULE_ID]:
        return ModulePolicy(modules[DEFAULT_MODULE_ID], encode)
    return SocietyPolicy(list(modules.values()), encode, int(saved_society_config(checkpoint)["clones"]), bids)


def check_option(checkpoint: str | Path, env: gym.Env, name: str = "option") -> None:
    """Raises ValueError, naming the option (`name`) and what does not fit, unless the
    checkpoint can act on `env` (the primitives' env): a policy's actions are the env's; a
    society's primitives are the env's actions and its bidders observe the env's states."""
    from rllib_society.checkpoints import DEFAULT_MODULE_ID, load_modules, saved_society_config

    try:
        modules = load_modules(checkpoint)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    first, actions = next(iter(modules.values())), int(env.action_space.n)
    if list(modules) == [DEFAULT_MODULE_ID]:
        if int(first.action_space.n) != actions:
            raise ValueError(f"{name}={str(checkpoint)!r} does not fit the env: its policy has "
                             f"{first.action_space.n} actions, the env {actions}.")
        return
    saved = saved_society_config(checkpoint)
    what = f"{name}={str(checkpoint)!r} (a society trained on {saved.get('env')!r})"
    if saved.get("options"):
        raise ValueError(f"{what} cannot be an option: its primitives are options themselves; a society "
                         f"option's primitives must be the env's actions.")
    observed = bidder_observation_space(env.observation_space).shape
    if tuple(first.observation_space.shape) != tuple(observed):
        raise ValueError(f"{what} does not fit the env: its bidders observe states of shape "
                         f"{tuple(first.observation_space.shape)}, the env's states give {tuple(observed)}.")
    if len(modules) != actions:
        raise ValueError(f"{what} does not fit the env: it has {len(modules)} primitives, one per action "
                         f"of its env, and the env has {actions} actions.")
