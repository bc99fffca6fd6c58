"""Values of any range as bids in [0, 1]. Pure numpy, no Ray.

A bid stands for the affine image of a value, ``b = (Q - lo) / (hi - lo)``. The auction pays the
winner a reward r' instead of the env's r so that the image of Q* is exactly the Q* of the
rewards r' (so truthful equilibrium bids are the image of Q*, and every policy's ranking is
kept). With Q(s, a) = R + g * V(s') (R an option's discounted return, g = gamma ** its env
steps), subtracting lo and dividing by (hi - lo) gives

- a step after which the episode goes on: ``r' = (R - (1 - g) * lo) / (hi - lo)``
- the step that ends the episode (V(s') = 0): ``r' = (R - lo) / (hi - lo)``

Over any episode of T env steps the terms added to the discounted return sum to
``-lo * (1 - gamma ** T) - gamma ** T * lo = -lo``: the same for every episode, unlike the naive
shift of every reward, which pays for dawdling (or for ending early) and so changes the optimal
policy. With ``lo = 0`` the map is a plain scale, ``r' = R / hi``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rllib_society.errors import FieldError
from rllib_society.q_values import q_values_by_step

#: The bid range itself: the identity map, the paper's tasks' (their values lie in [0, 1]).
UNIT_RANGE = (0.0, 1.0)
#: ``value_range: adaptive``: no range; bids are values in env units on the real line
#: (`rllib_society.value_scale`), so the auction's maps are the identity (`UNIT_RANGE`).
ADAPTIVE = "adaptive"


def is_adaptive(value_range: Any) -> bool:
    """Whether a config's `value_range` is ``adaptive`` (bids on the real line)."""
    return isinstance(value_range, str) and value_range == ADAPTIVE


def bid_reward(reward: float, discount: float, last: bool, value_range: tuple[float, float]) -> float:
    """The auction's reward r' of one step (see the module docstring).

    Args:
        reward: the env's (discounted, for an option) reward R of the step.
        discount: gamma ** (env steps of the step).
        last: whether the step ends the episode (its lookahead is 0).
        value_range: (lo, hi), lo < hi.
    """
    lo, hi = value_range
    shift = lo if last else (1.0 - discount) * lo
    return (reward - shift) / (hi - lo)


def to_bids(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Values in env units -> bid units."""
    lo, hi = value_range
    return (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)


def to_values(bids: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Bids -> the values they stand for, in env units."""
    lo, hi = value_range
    return lo + np.asarray(bids, dtype=np.float64) * (hi - lo)


def default_value_range(env, gamma: float, env_id: str = "env", truncation: str = "end") -> tuple[float, float]:
    """The value range a society's bids cover when the config gives none: [0, 1] widened to
    hold Q* when the env exposes a toy-text table `P` (so bids are Q* itself whenever Q* fits,
    as on the paper's tasks), else to hold every discounted return that the env's
    ``reward_range`` and time limit allow. With ``truncation: end`` and a time limit H, Q* is
    the one the cut sees: Q* with 1..H steps left (`q_values_by_step`).

    Raises:
        ValueError: naming ``value_range`` when the env tells neither.
    """
    table = getattr(env.unwrapped, "P", None)
    horizon = env.spec.max_episode_steps if env.spec is not None else None
    if table is not None:
        q_star = q_values_by_step(table, gamma, horizon, truncation == "end")
        return min(0.0, float(q_star.min())), max(1.0, float(q_star.max()))
    reward_range = getattr(env.unwrapped, "reward_range", None)
    if reward_range is not None and horizon and all(map(math.isfinite, reward_range)):
        steps = (1.0 - gamma ** horizon) / (1.0 - gamma) if gamma < 1 else float(horizon)
        low, high = reward_range
        return min(0.0, low * steps), max(1.0, high * steps)
    raise ValueError(
        f"value_range=None is not allowed for env {env_id!r}: it has no transition table P, and no "
        f"finite reward_range with a time limit, to bound its values. value_range must be "
        f"[lo, hi], the lowest and highest discounted return from any state (e.g. [0, 1] for "
        f"rewards in [0, 1] paid once per episode)."
    )


def retired_reward_scale(scale: float) -> ValueError:
    """The error for configs that still set ``reward_scale`` (value_range [0, 1/s] replaced it)."""
    return ValueError(f"reward_scale={scale!r} is not allowed any more: it became value_range, and "
                      f"reward_scale: s is value_range: [0, 1/s] (here [0, {1 / scale:g}]).")


def check_value_range(value_range: Any) -> tuple[float, float]:
    """(lo, hi) as floats (`UNIT_RANGE` for ``adaptive``); `FieldError` (a ValueError) unless
    two finite numbers lo < hi or ``adaptive``."""
    if is_adaptive(value_range):
        return UNIT_RANGE
    ok = (isinstance(value_range, (list, tuple)) and len(value_range) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for v in value_range)
          and value_range[0] < value_range[1])
    if not ok:
        raise FieldError("value_range", value_range, "None, [lo, hi] (two finite numbers with lo < hi) or "
                                                    "adaptive (bids on the real line, in env units)")
    return float(value_range[0]), float(value_range[1])
