"""Base class for small MDPs given by a toy-text transition table."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rllib_society import optimal_q_values

#: ``P[s][a] = [(prob, next_state, reward, terminated), ...]``, gymnasium's toy-text convention.
TransitionTable = dict[int, dict[int, list[tuple[float, int, float, bool]]]]


class TabularEnv(gym.Env):
    """An env following a transition table `P`; observations are the state integers.

    Every state of `P` is an observation (``Discrete(len(P))``), including states that are never
    reached; give those an absorbing self-loop. `P` is public, so generic code finds it through
    ``env.unwrapped.P`` as for gymnasium's toy-text envs.
    """

    def __init__(self, P: TransitionTable, start_state: int = 0) -> None:
        """Builds the env from its table.

        Args:
            P: The transition table: states ``0..n-1``, the same actions ``0..m-1`` in each.
            start_state: The state every episode starts in.
        """
        self.P = P
        self.start_state = start_state
        self.state = start_state
        self.observation_space = gym.spaces.Discrete(len(P))
        self.action_space = gym.spaces.Discrete(len(P[start_state]))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.state = self.start_state
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        transitions = self.P[self.state][int(action)]
        # A deterministic entry draws nothing (numpy's weighted choice costs most of a step).
        index = 0 if len(transitions) == 1 else self.np_random.choice(len(transitions), p=[t[0] for t in transitions])
        _, self.state, reward, terminated = transitions[index]
        return self.state, float(reward), bool(terminated), False, {}

    def q_star(self, gamma: float = 0.99) -> np.ndarray:
        """Q* of shape (n_states, n_actions) for discount `gamma`, ignoring time limits."""
        return optimal_q_values(self.P, gamma)
