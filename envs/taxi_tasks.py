"""Taxi's sub-tasks, to pre-train options for a society on Taxi-v3 (the MAXQ decomposition of
Dietterich, 2000): drive to one of the four landmarks (R, G, Y, B) and pick up there, or drop
off there. An option ends with its pick-up or drop-off (`option_done_action: [4, 5]`), which
Taxi itself then receives: the society decides which option, hence where and what, and Taxi's
own reward judges it.

The sub-task pays 1 for its own final action on its landmark, 0 for a final action elsewhere or
the other final action (both end the episode), 0 for a move; the discount prefers short paths.
Where to drive does not depend on the passenger, so a sub-task observes only the taxi's cell
(MAXQ's state abstraction), and so do its options in the society
(`option_observation: envs.taxi_tasks:taxi_cell_observation`): 25 states to learn, not 500.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: Taxi's landmarks (row, column), in its own order, and its final actions.
LANDMARKS = {"R": (0, 0), "G": (0, 4), "Y": (4, 0), "B": (4, 3)}
FINAL_ACTIONS = {"pickup": 4, "dropoff": 5}
#: The sub-task's time limit: Taxi's longest shortest path is 8 moves.
HORIZON = 25
CELLS = gym.spaces.Discrete(25)


def taxi_cell(state: int) -> int:
    """The taxi's cell, row * 5 + column, of a Taxi state ((cell * 5 + passenger) * 4 + destination)."""
    return int(state) // 20


def taxi_cell_observation(state: int) -> np.ndarray:
    """What a sub-task's option observes of a Taxi state: its cell, one-hot (as in its training)."""
    one_hot = np.zeros(CELLS.n, np.float32)
    one_hot[taxi_cell(state)] = 1.0
    return one_hot


class TaxiTaskEnv(gym.Env):
    """Taxi-v3's grid, observed as the taxi's cell; the task: `final` ("pickup" or "dropoff") at
    `landmark`. Episodes start in any of Taxi's 500 states."""

    def __init__(self, landmark: str = "R", final: str = "pickup"):
        if landmark not in LANDMARKS:
            raise ValueError(f"landmark={landmark!r} is not allowed; allowed: {', '.join(LANDMARKS)}.")
        if final not in FINAL_ACTIONS:
            raise ValueError(f"final={final!r} is not allowed; allowed: {', '.join(FINAL_ACTIONS)}.")
        self.taxi = gym.make("Taxi-v3").unwrapped
        self.target, self.final = LANDMARKS[landmark], FINAL_ACTIONS[final]
        self.observation_space, self.action_space = CELLS, self.taxi.action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.taxi.reset(seed=int(self.np_random.integers(2**31)))
        self.taxi.s = int(self.np_random.integers(self.taxi.observation_space.n))
        return taxi_cell(self.taxi.s), {}

    def step(self, action: int):
        action = int(action)
        if action in FINAL_ACTIONS.values():
            row, col, _, _ = self.taxi.decode(self.taxi.s)
            success = action == self.final and (row, col) == self.target
            return taxi_cell(self.taxi.s), float(success), True, False, {}
        state, _, _, _, _ = self.taxi.step(action)
        return taxi_cell(state), 0.0, False, False, {}
