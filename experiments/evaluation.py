"""Greedy evaluation of a society: every bidder bids its mean bid (spec section 3), and the mean
bids per state are compared with Q* (the paper's central claim: truthful bids equal Q*)."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from rllib_society import (
    AUCTION_INFO, EPISODE_INFO, INNER_AUCTIONS, OPTION_RETURN, OPTION_STEPS, AuctionEnv, bidder_observation,
    greedy_bids, is_adaptive, make_base_env, options_q_star, primitive_name, q_values_by_step, to_values,
)

#: Greedy episodes' cap (env steps) when the config sets none and the env has no time limit.
DEFAULT_EVAL_MAX_STEPS = 1000
#: How close (in bid units) to Q* a bid counts as truthful in ``truthful_share``. Bids on the real
#: line (``value_range: adaptive``) have no bid units: there it is a share of Q*'s range, widened
#: to hold [0, 1], as the default value range would be.
TRUTHFUL_TOLERANCE = 0.05


def eval_max_steps(society_config: dict[str, Any]) -> int:
    """The env steps after which a greedy episode is cut: ``eval_max_steps``, else the env's
    time limit, else `DEFAULT_EVAL_MAX_STEPS`."""
    if society_config.get("eval_max_steps"):
        return int(society_config["eval_max_steps"])
    env = make_base_env(society_config["env"], society_config["env_config"])
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    return int(limit or DEFAULT_EVAL_MAX_STEPS)


def q_star_by_step(society_config: dict[str, Any]) -> np.ndarray | None:
    """Q* of the wrapped env (env units) by env step, as the society's ``truncation`` sees it
    (`q_values_by_step`), when the env exposes a toy-text transition table `P`; else None.
    Over options, Q* of the options (`options_q_star`; one step: it ignores the time limit)."""
    env = make_base_env(society_config["env"], society_config["env_config"])
    table = getattr(env.unwrapped, "P", None)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    env.close()
    if table is None:
        return None
    if society_config.get("options"):
        return options_q_star(society_config)
    return q_values_by_step(table, society_config["gamma"], limit, society_config.get("truncation", "end") == "end")


def q_star(society_config: dict[str, Any]) -> np.ndarray | None:
    """Q* (env units, states x actions) at the start of an episode (`q_star_by_step`), or None."""
    by_step = q_star_by_step(society_config)
    return None if by_step is None else by_step[0]


def coverable_q_star(society_config: dict[str, Any]) -> np.ndarray | None:
    """`q_star_by_step` when truthful bids can stand for it (all of it within the society's
    value range); else None, as for Duality, whose Q* reaches 50 beyond its range [0, 10] (spec:
    judge it by return and winners)."""
    values = q_star_by_step(society_config)
    if values is None or is_adaptive(society_config["value_range"]):  # bids on the real line stand for any value
        return values
    lo, hi = society_config["value_range"]
    if values.min() < lo - 1e-9 or values.max() > hi + 1e-9:
        return None
    return values


def greedy_episode(env: AuctionEnv, modules: dict[str, RLModule], seed: int | None = None,
                   frames: list | None = None, max_env_steps: int = DEFAULT_EVAL_MAX_STEPS):
    """Runs one episode with mean bids, cut after the auction that reaches `max_env_steps` env
    steps. Returns (episode summary with ``timeout``: whether it was cut, [(env step, state,
    winning primitive), ...] of its auctions).

    With a `frames` list (and an env made with ``render_mode="rgb_array"``), appends one dict per
    auction, ``{"frame", "bids", "winner", "env_steps", "inner"}`` (``inner``: a society option's
    own auctions, else None), and the final frame.
    """
    observation, _ = env.reset(seed=seed)
    picks = []
    while True:
        state, step = env.state, env._env_steps
        bids = greedy_bids(modules, observation[None])[0]
        if frames is not None:
            frames.append({"frame": env.base_env.render(), "bids": bids})
        observation, _, terminated, truncated, info = env.step(np.repeat(bids, env.clones))
        record = info[AUCTION_INFO]
        if not record["pricing"]:
            picks.append((step, state, record["winner"] // env.clones))
        if frames is not None:
            frames[-1].update(winner=record["winner"] // env.clones, env_steps=env._env_steps,
                              inner=record.get(INNER_AUCTIONS))
        ended = terminated or truncated
        if ended or env._env_steps >= max_env_steps:
            summary = {**(record[EPISODE_INFO] if ended else env.episode_summary()), "timeout": not ended}
            if frames is not None:
                frames.append({"frame": env.base_env.render(), "bids": None, "winner": None,
                               "env_steps": env._env_steps, "return": summary["env_return"]})
            return summary, picks


def evaluate_policy(module: RLModule, env: gym.Env, episodes: int = 1, seed: int | None = None,
                    max_env_steps: int = DEFAULT_EVAL_MAX_STEPS) -> dict:
    """Greedy return, length (env steps) and time-outs (episodes cut at `max_env_steps`) of a
    single-agent policy taking its most likely action; Discrete states are one-hot encoded, as
    RLlib's FlattenObservations does."""
    def act(state, steps: int) -> int:
        obs = bidder_observation(state, env.observation_space)
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: torch.as_tensor(obs)[None]})
        return int(logits[Columns.ACTION_DIST_INPUTS].argmax(-1)[0])

    returns, lengths, timeouts = run_episodes(env, act, episodes, seed, max_env_steps)
    return {"greedy_return": float(np.mean(returns)), "greedy_length": float(np.mean(lengths)),
            "greedy_success": float(np.mean(np.array(returns) > 0)), "greedy_timeouts": timeouts}


def run_episodes(env: gym.Env, act: Callable[[Any, int], int], episodes: int, seed: int | None,
                 max_env_steps: int) -> tuple[list[float], list[int], int]:
    """Runs a single-agent chooser ``act(state, env steps so far) -> action`` on seeds ``seed,
    seed + 1, ...``, each episode cut at `max_env_steps`; returns each episode's env return and
    env steps (an option's info counts its own of both), and how many were cut."""
    returns, lengths, timeouts = [], [], 0
    for episode in range(episodes):
        state, _ = env.reset(seed=None if seed is None else seed + episode)
        total, steps, done = 0.0, 0, False
        while not done and steps < max_env_steps:
            state, reward, terminated, truncated, info = env.step(act(state, steps))
            total, done = total + float(info.get(OPTION_RETURN, reward)), terminated or truncated
            steps += info.get(OPTION_STEPS, 1)
        returns.append(total)
        lengths.append(steps)
        timeouts += not done
    return returns, lengths, timeouts


def evaluation_env(society_config: dict[str, Any]) -> AuctionEnv:
    """The society every bidder of which takes part (no dropout) in usual auctions (no
    exploration offers), for greedy evaluation."""
    return AuctionEnv({**society_config, "dropout": 0.0, "exploration": None})


def evaluate(
    modules: dict[str, RLModule],
    env: AuctionEnv,
    episodes: int = 1,
    seed: int | None = None,
    q_values: np.ndarray | None = None,
    max_env_steps: int = DEFAULT_EVAL_MAX_STEPS,
) -> dict[str, Any]:
    """Greedy return, mean bids per state and bid error of a society, run on `env` (see
    `evaluation_env`).

    Returns:
        ``greedy_return`` (mean env return), ``greedy_length`` (mean env steps),
        ``greedy_success`` (share of episodes with a positive return: TwoRooms' success),
        ``greedy_timeouts`` (episodes cut at `max_env_steps`, their return as cut), and for
        Discrete observations ``mean_bids`` as ``{state: {primitive: value}}``, the values the
        mean bids stand for (env units, `to_values`); with `q_values` (env units, by env step as
        `q_star_by_step` gives it) also ``bid_error``, the largest |value - Q*| over the (step,
        state, primitive) the greedy society visits and picks, ``bid_error_all``, over every
        primitive at the (step, state) it visits (the paper's equilibrium: every bid is Q*,
        losers' too), and ``truthful_share``, per primitive the share of visited (step, state)
        where its value is within `TRUTHFUL_TOLERANCE` bid units of Q*.
    """
    discrete = isinstance(env.base_env.observation_space, gym.spaces.Discrete)
    summaries, picks = [], set()
    for episode in range(episodes):
        summary, episode_picks = greedy_episode(env, modules, None if seed is None else seed + episode,
                                                max_env_steps=max_env_steps)
        summaries.append(summary)
        if discrete:  # (env step, state, primitive), for the bid error
            picks.update(episode_picks)
    result: dict[str, Any] = {
        "greedy_return": float(np.mean([s["env_return"] for s in summaries])),
        "greedy_length": float(np.mean([s["env_steps"] for s in summaries])),
        "greedy_success": float(np.mean([s["env_return"] > 0 for s in summaries])),
        "greedy_timeouts": sum(s["timeout"] for s in summaries),
    }
    if discrete:
        values = to_values(greedy_bids(modules, np.eye(env.base_env.observation_space.n)), env.value_range)
        result["mean_bids"] = {
            int(s): {primitive_name(k): float(values[s, k]) for k in range(values.shape[1])}
            for s in range(len(values))
        }
        if q_values is not None:
            def errors(t: int, s: int) -> np.ndarray:
                return np.abs(values[s] - q_values[min(t, len(q_values) - 1)][s])

            result["bid_error"] = float(max(errors(t, s)[k] for t, s, k in picks))
            result["bid_error_all"] = float(max(errors(t, s).max() for t, s, _ in picks))
            visited = sorted({(t, s) for t, s, _ in picks})
            lo, hi = (min(0.0, q_values.min()), max(1.0, q_values.max())) if env.adaptive else env.value_range
            truthful = np.array([errors(t, s) <= TRUTHFUL_TOLERANCE * (hi - lo)
                                 for t, s in visited])
            result["truthful_share"] = {primitive_name(k): float(truthful[:, k].mean())
                                        for k in range(truthful.shape[1])}
    return result
