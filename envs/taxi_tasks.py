"""Taxi's sub-tasks, to pre-train options for a society on Taxi-v3 (the MAXQ decomposition of
Dietterich, 2000): drive to one of the four landmarks (R, G, Y, B) and pick up there, or drop
off there. An option ends with its pick-up or drop-off (`option_done_action: [4, 5]`), which
Taxi itself then receives: the society decides which option, hence where and what, and Taxi's
own reward judges it.

The sub-task pays 1 for its own final action on its landmark, 0 for a final action elsewhere or
the other final action (both end the episode), 0 for a move; the discount prefers short paths.
Episodes start in any of Taxi's 500 states (the passenger anywhere, in the taxi too), so that the
option acts right wherever the society hands it the taxi.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

#: Taxi's landmarks (row, column), in its own order, and its final actions.
LANDMARKS = {"R": (0, 0), "G": (0, 4), "Y": (4, 0), "B": (4, 3)}
FINAL_ACTIONS = {"pickup": 4, "dropoff": 5}
#: The sub-task's time limit: Taxi's longest shortest path is 8 moves.
HORIZON = 25


class TaxiTaskEnv(gym.Env):
    """Taxi-v3's grid and observations; the task: `final` ("pickup" or "dropoff") at `landmark`."""

    def __init__(self, landmark: str = "R", final: str = "pickup"):
        if landmark not in LANDMARKS:
            raise ValueError(f"landmark={landmark!r} is not allowed; allowed: {', '.join(LANDMARKS)}.")
        if final not in FINAL_ACTIONS:
            raise ValueError(f"final={final!r} is not allowed; allowed: {', '.join(FINAL_ACTIONS)}.")
        self.taxi = gym.make("Taxi-v3").unwrapped
        self.target, self.final = LANDMARKS[landmark], FINAL_ACTIONS[final]
        self.observation_space, self.action_space = self.taxi.observation_space, self.taxi.action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.taxi.reset(seed=int(self.np_random.integers(2**31)))
        self.taxi.s = int(self.np_random.integers(self.observation_space.n))
        return int(self.taxi.s), {}

    def step(self, action: int):
        action = int(action)
        if action in FINAL_ACTIONS.values():
            row, col, _, _ = self.taxi.decode(self.taxi.s)
            success = action == self.final and (row, col) == self.target
            return int(self.taxi.s), float(success), True, False, {}
        state, _, _, _, _ = self.taxi.step(action)
        return int(state), 0.0, False, False, {}
