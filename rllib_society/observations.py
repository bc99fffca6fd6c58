"""What a bidder observes of a state: the env's Discrete states one-hot, other states as float32.

Its own module because both the auction env and the options (a pre-trained society bidding for
an outer one) need it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def bidder_observation_space(state_space: gym.Space) -> gym.spaces.Box:
    """What a bidder observes of a state: Discrete states one-hot, other states as float32."""
    if isinstance(state_space, gym.spaces.Discrete):
        return gym.spaces.Box(0.0, 1.0, (int(state_space.n),), np.float32)
    return gym.spaces.Box(state_space.low, state_space.high, state_space.shape, np.float32)


def bidder_observation(state, state_space: gym.Space) -> np.ndarray:
    """What a bidder observes of `state` (in `bidder_observation_space`)."""
    if not isinstance(state_space, gym.spaces.Discrete):
        return np.asarray(state, dtype=np.float32)
    one_hot = np.zeros(int(state_space.n), dtype=np.float32)
    one_hot[int(state)] = 1.0
    return one_hot
