"""Optimal action values of a tabular MDP, and of deterministic options over one, by value
iteration (pure numpy)."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np

#: Tolerance on the sum of a state-action's transition probabilities.
PROBABILITY_TOLERANCE = 1e-6


def optimal_q_values(
    P: dict, gamma: float, tol: float = 1e-10, max_iters: int = 100_000
) -> np.ndarray:
    """Computes Q* of a toy-text transition table by value iteration.

    The table follows gymnasium's toy-text convention (as in FrozenLake):
    ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` with states ``0..n_states-1``
    and actions ``0..n_actions-1`` in every state. A terminated transition does not bootstrap;
    time limits are ignored (infinite horizon).

    Args:
        P: The transition table.
        gamma: Discount factor in [0, 1].
        tol: Stop once no Q-value changes by more than this in one sweep.
        max_iters: Maximum number of sweeps.

    Returns:
        Array of shape (n_states, n_actions) with Q*(s, a).

    Raises:
        ValueError: If `P` is malformed or `gamma` is outside [0, 1].
        RuntimeError: If value iteration does not converge within `max_iters` sweeps.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}.")
    rewards, bootstrap = _expected_rewards_and_transitions(P)
    q = np.zeros_like(rewards)
    for _ in range(max_iters):
        q_next = rewards + gamma * bootstrap @ q.max(axis=1)
        if np.max(np.abs(q_next - q)) <= tol:
            return q_next
        q = q_next
    raise RuntimeError(f"value iteration did not converge to tol={tol} within {max_iters} sweeps.")


def finite_horizon_q_values(P: dict, gamma: float, horizon: int) -> np.ndarray:
    """Q of a tabular MDP cut after `horizon` steps, the cut ending the task (no value after it):
    ``Q[h]`` is Q* with h steps left (``Q[0]`` is 0), by backward induction. A state visited at
    step t of an episode with time limit H has value ``Q[H - t]``.

    Returns:
        Array of shape (horizon + 1, n_states, n_actions).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}.")
    rewards, bootstrap = _expected_rewards_and_transitions(P)
    q = np.zeros((horizon + 1, *rewards.shape))
    for h in range(1, horizon + 1):
        q[h] = rewards + gamma * bootstrap @ q[h - 1].max(axis=1)
    return q


def q_values_by_step(P: dict, gamma: float, horizon: int | None, cut_ends_task: bool) -> np.ndarray:
    """Q* as a society sees it, by env step t of an episode: (T, n_states, n_actions). When a
    time limit `horizon` cuts the episode and the cut ends the task (``truncation: end``), step
    t has H - t steps left (``finite_horizon_q_values``, T = H); otherwise Q* does not depend on
    t (T = 1)."""
    if cut_ends_task and horizon:
        return finite_horizon_q_values(P, gamma, horizon)[:0:-1]  # Q[H - t] for t = 0..H-1
    return optimal_q_values(P, gamma)[None]


def options_q_values(next_states: np.ndarray, rewards: np.ndarray, discounts: np.ndarray,
                     terminated: np.ndarray, tolerance: float = 1e-10) -> np.ndarray:
    """Q* over options with deterministic outcomes (a semi-MDP): option o from state s ends in
    ``next_states[s, o]`` with discounted reward ``rewards[s, o]`` and discount ``discounts[s, o]``
    (gamma ** its env steps), so Q[s, o] = r + d * max_o' Q[s', o'], or r where it terminated.
    Value iteration; every discount is below 1, so it converges. (states, options) arrays in, Q* out."""
    if not np.all(discounts < 1.0):
        raise ValueError("every option's discount must be below 1 (gamma < 1).")
    q = np.zeros(rewards.shape)
    while True:
        new = rewards + discounts * np.where(terminated, 0.0, q.max(axis=1)[next_states])
        if np.abs(new - q).max() < tolerance:
            return new
        q = new


def _expected_rewards_and_transitions(P: dict) -> tuple[np.ndarray, np.ndarray]:
    """Validates `P`; returns expected rewards R[s, a] and the non-terminated transition
    probabilities T[s, a, s'], so that Q = R + gamma * T @ V."""
    if not isinstance(P, Mapping) or not P:
        raise ValueError(f"P must be a non-empty dict of states, got {type(P).__name__}.")
    n_states = len(P)
    if set(P) != set(range(n_states)):
        raise ValueError(f"P's states must be 0..{n_states - 1}, got {sorted(P, key=repr)}.")
    if not all(isinstance(P[s], Mapping) and P[s] for s in P):
        raise ValueError("P[s] must be a non-empty dict of actions for every state s.")
    n_actions = len(P[0])
    rewards = np.zeros((n_states, n_actions))
    bootstrap = np.zeros((n_states, n_actions, n_states))
    for s in range(n_states):
        if set(P[s]) != set(range(n_actions)):
            raise ValueError(
                f"P[{s}]'s actions must be 0..{n_actions - 1} (as in state 0), "
                f"got {sorted(P[s], key=repr)}."
            )
        for a in range(n_actions):
            transitions = P[s][a]
            if not isinstance(transitions, (list, tuple)) or not transitions:
                raise ValueError(f"P[{s}][{a}] must be a non-empty list of transitions.")
            total = 0.0
            for transition in transitions:
                _check_transition(transition, s, a, n_states)
                prob, next_state, reward, terminated = transition
                total += prob
                rewards[s, a] += prob * reward
                if not terminated:
                    bootstrap[s, a, next_state] += prob
            if abs(total - 1.0) > PROBABILITY_TOLERANCE:
                raise ValueError(f"P[{s}][{a}]'s probabilities sum to {total}, not 1.")
    return rewards, bootstrap


def _check_transition(transition: object, s: int, a: int, n_states: int) -> None:
    """Raises ValueError unless `transition` is a valid (prob, next_state, reward, terminated)."""
    where = f"P[{s}][{a}] entry {transition!r}"
    if not isinstance(transition, (tuple, list)) or len(transition) != 4:
        raise ValueError(f"{where} must be a 4-tuple (prob, next_state, reward, terminated).")
    prob, next_state, reward, terminated = transition
    if not isinstance(prob, Real) or not 0.0 <= prob <= 1.0:
        raise ValueError(f"{where}: probability must be a number in [0, 1].")
    if isinstance(next_state, bool) or not isinstance(next_state, (int, np.integer)) \
            or not 0 <= next_state < n_states:
        raise ValueError(f"{where}: next state must be an integer in 0..{n_states - 1}.")
    if not isinstance(reward, Real) or not np.isfinite(reward):
        raise ValueError(f"{where}: reward must be a finite number.")
    if not isinstance(terminated, (bool, np.bool_)):
        raise ValueError(f"{where}: terminated must be a bool.")
