"""Greedy evaluation of a finished run on many fixed-seed episodes, beside the optimal policy on
the same seeds (from Q*, when the env exposes a toy-text table `P`).

    python -m experiments.evaluate_run runs/toytext_taxi --episodes 100

Training evaluates on a few episodes per iteration (``eval_episodes``); this judges the run's
latest checkpoint on as many as asked: seeds ``seed``, ``seed + 1``, ... (the run's seed by
default), each cut at the run's ``eval_max_steps``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from experiments.algo_config import build_algo_config
from experiments.config_files import load_config
from experiments.evaluation import (
    coverable_q_star, eval_max_steps, evaluate, evaluate_policy, evaluation_env, q_star_by_step, run_episodes,
)
from rllib_society import BaseEnv, latest_checkpoint, load_modules, load_policy, make_base_env


def optimal_returns(society_config: dict[str, Any], episodes: int, seed: int, max_env_steps: int) -> list[float] | None:
    """Env return of the policy greedy in the env's own Q* (`q_star_by_step`, so it knows a time
    limit when the run's ``truncation`` does; over options too, as the bound of what they can
    reach) on seeds ``seed, seed + 1, ...``; None without Q*."""
    q_values = q_star_by_step({**society_config, "options": []})
    if q_values is None:
        return None
    env = make_base_env(society_config["env"], society_config["env_config"])
    act = lambda state, steps: int(np.argmax(q_values[min(steps, len(q_values) - 1)][state]))  # noqa: E731
    returns, _, _ = run_episodes(env, act, episodes, seed, max_env_steps)
    env.close()
    return returns


def evaluate_run(output: str | Path, episodes: int, seed: int | None = None) -> dict[str, Any]:
    """The greedy return (mean over `episodes` fixed-seed episodes), time-outs and, for a
    society, bid errors of the run in `output` (its latest checkpoint), and the optimal mean
    return on the same seeds."""
    output = Path(output)
    config = load_config(output / "config.yaml")
    society_config = dict(build_algo_config(config).env_config)  # value_range resolved
    seed = config.seed if seed is None else seed
    max_steps = eval_max_steps(society_config)
    checkpoint = latest_checkpoint(output)
    if config.algo == "monolithic":
        result = evaluate_policy(load_policy(checkpoint), BaseEnv(society_config), episodes, seed=seed,
                                 max_env_steps=max_steps)
    else:
        result = evaluate(load_modules(checkpoint), evaluation_env(society_config), episodes, seed=seed,
                          q_values=coverable_q_star(society_config), max_env_steps=max_steps)
        result.pop("mean_bids", None)
    optimal = optimal_returns(society_config, episodes, seed, max_steps)
    return {"run": str(output), "checkpoint": checkpoint.name, "algo": config.algo, "episodes": episodes,
            "seeds": f"{seed}-{seed + episodes - 1}", **result,
            "optimal_return": None if optimal is None else float(np.mean(optimal))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="a run.py output folder (with config.yaml and trial/checkpoint_*)")
    parser.add_argument("--episodes", type=int, default=100, help="fixed-seed greedy episodes (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="first episode's seed (default: the run's seed)")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    if not (Path(args.output) / "config.yaml").is_file():
        parser.error(f"{args.output!r} is not a run.py output folder (no config.yaml in it)")
    try:
        result = evaluate_run(args.output, args.episodes, args.seed)
    except ValueError as error:  # e.g. no checkpoint yet
        parser.error(str(error))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
