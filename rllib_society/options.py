"""Pre-trained options as primitives (spec sections 1 and 4, TwoRooms): a frozen policy that,
when its primitive wins an auction, acts on the env until it emits its ``done`` action, the env
ends, or the step budget is spent. Winning an option is one auction step; its reward is the
discounted env return of its steps, sum_k gamma^k r_k, and its discount is gamma^L for L steps,
exactly what `auction.episode_utilities` expects per auction step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np


class Policy(Protocol):
    def act(self, observation: np.ndarray) -> int: ...


@dataclass
class OptionResult:
    """What one option execution did: the state it handed back and its auction-step bookkeeping."""

    state: Any
    reward: float
    """sum_k gamma^k r_k over its env steps."""
    discount: float
    """gamma ** length."""
    length: int
    terminated: bool
    truncated: bool


def run_option(env: gym.Env, state: Any, policy: Policy, done_action: int, gamma: float,
               max_steps: int | None = None) -> OptionResult:
    """Runs `policy` on `env` from `state` until it emits `done_action` (which the env still
    receives: saying done can be the env's success), the env terminates or truncates, or
    `max_steps` env steps are spent."""
    reward, discount, length = 0.0, 1.0, 0
    terminated = truncated = False
    while True:
        action = policy.act(state)
        state, env_reward, terminated, truncated, _ = env.step(action)
        reward += discount * float(env_reward)
        discount *= gamma
        length += 1
        if terminated or truncated or action == done_action or length == max_steps:
            return OptionResult(state, reward, discount, length, terminated, truncated)


#: Info keys of an `OptionsEnv` step: env steps the option took, and its discount gamma ** steps.
OPTION_STEPS = "option_steps"
OPTION_DISCOUNT = "discount"


class OptionsEnv(gym.Wrapper):
    """The env with options for actions: action k runs option k (`run_option`) and the step
    returns its discounted reward, with `OPTION_STEPS` and `OPTION_DISCOUNT` in the info. The
    society's primitives, and the monolithic baseline's actions, over the same options."""

    def __init__(self, env: gym.Env, policies: list[Policy], done_action: int, gamma: float,
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
        info = {OPTION_STEPS: done.length, OPTION_DISCOUNT: done.discount}
        return done.state, done.reward, done.terminated, done.truncated, info


class ModulePolicy:
    """A frozen RLlib RLModule acting greedily (its most likely action)."""

    def __init__(self, module):
        self.module = module

    def act(self, observation: np.ndarray) -> int:
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            batch = {Columns.OBS: torch.as_tensor(np.asarray(observation, dtype=np.float32))[None]}
            logits = self.module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
        return int(logits.argmax(-1)[0])


def load_option_policy(checkpoint: str | Path) -> ModulePolicy:
    """The frozen greedy policy of a pre-trained single-agent PPO run (or trial, or checkpoint)."""
    from rllib_society.checkpoints import load_policy

    return ModulePolicy(load_policy(checkpoint))
