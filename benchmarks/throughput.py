"""Env steps per second of the society against plain single-agent RLlib PPO, side by side.

For every setting (primitives x env runners x envs per runner) the script builds two algorithms
on the same env with the same network, batch and PPO settings (from ``--config``): the society
(``society_ppo_config``) and single-agent PPO that picks the env action itself (the monolithic
baseline, ``monolithic_ppo_config``). It then measures

- ``sample_sps``: env steps per second of sampling alone (RLlib's `synchronous_parallel_sample`,
  what PPO calls each iteration), and
- ``train_sps``: env steps per second of whole training iterations (sampling plus update),

each after a warm-up iteration, and the ratio society / single-agent of both. The society's
iteration time is split with RLlib's own timers into env steps, bidder forward passes,
connectors, the learner update and the rest (episode bookkeeping, metrics, Ray calls).

Usage::

    python benchmarks/throughput.py                                # primitives 2..32, local
    python benchmarks/throughput.py --primitives 4 --env-runners 0 1 2 --envs-per-env-runner 1 8
    python benchmarks/throughput.py --config configs/bandit.yaml --primitives 4

Chain with ``num_actions = primitives`` (actions beyond Left/Right stay in place) is the env;
with ``configs/bandit.yaml`` the env is the 4-arm Bandit. Machines are noisy: compare ratios
measured in the same run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rllib_society.config import load_config  # noqa: E402

COLUMNS = ["env", "primitives", "bidders", "env_runners", "envs_per_runner", "algo", "sample_sps",
           "train_sps", "sample_ratio", "train_ratio", "env_pct", "forward_pct", "connectors_pct",
           "learner_pct", "rest_pct"]


def measure(algo, config, iterations: int) -> dict:
    """Sampling-only and whole-iteration env steps/s, and the iteration's cost split."""
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    algo.train()  # warm-up: first-iteration set-up is not throughput
    batch = config.train_batch_size_per_learner
    started, steps = time.perf_counter(), 0
    for _ in range(iterations):
        episodes, _ = synchronous_parallel_sample(  # as PPO.training_step calls it
            worker_set=algo.env_runner_group, max_env_steps=batch, sample_timeout_s=600,
            _uses_new_env_runners=True, _return_metrics=True,
        )
        steps += sum(e.env_steps() for e in episodes)
    sample_sps = steps / (time.perf_counter() - started)

    before = algo.train()
    started = time.perf_counter()
    for _ in range(iterations):
        result = algo.train()
    seconds = time.perf_counter() - started
    steps = result["num_env_steps_sampled_lifetime"] - before["num_env_steps_sampled_lifetime"]
    return {"sample_sps": sample_sps, "train_sps": steps / seconds,
            **cost_split(result, config, seconds / iterations, steps / iterations)}


def cost_split(result: dict, config, iteration_s: float, steps_per_iteration: float) -> dict:
    """Percent of one iteration in env steps, forward passes, connectors and the learner, from
    RLlib's per-call timers (per env runner; remote runners work in parallel)."""
    runners = result["env_runners"]
    calls = steps_per_iteration / max(config.num_env_runners, 1) / config.num_envs_per_env_runner
    parts = {
        "env_pct": runners.get("env_step_timer", 0.0) * calls,
        "forward_pct": runners.get("rlmodule_inference_timer", 0.0) * calls,
        "connectors_pct": (runners.get("env_to_module_connector", {}).get("connector_pipeline_timer", 0.0)
                           + runners.get("module_to_env_connector", {}).get("connector_pipeline_timer", 0.0)) * calls,
        "learner_pct": result["timers"].get("learner_update_timer", 0.0),
    }
    parts["rest_pct"] = max(iteration_s - sum(parts.values()), 0.0)
    return {k: 100 * v / iteration_s for k, v in parts.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/chain.yaml")
    parser.add_argument("--primitives", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                        help="society sizes (Chain: num_actions); ignored for other envs")
    parser.add_argument("--env-runners", type=int, nargs="+", default=[0])
    parser.add_argument("--envs-per-env-runner", type=int, nargs="+", default=None,
                        help="default: the config's num_envs_per_env_runner")
    parser.add_argument("--clones", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per measurement")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "throughput.csv"))
    args = parser.parse_args(argv)

    base = load_config(ROOT / args.config, {"clones": args.clones}, args.sets)
    envs_per_runner = args.envs_per_env_runner or [base.num_envs_per_env_runner]
    primitives = args.primitives if base.env == "Chain-v0" else [None]

    import ray

    from rllib_society.algo_config import monolithic_ppo_config, society_ppo_config
    from rllib_society.auction_env import count_primitives
    from rllib_society.training import init_ray

    init_ray()
    rows = []
    print(" | ".join(f"{c:>13}" if i > 5 else c for i, c in enumerate(COLUMNS)), flush=True)
    for n, runners, num_envs in itertools.product(primitives, args.env_runners, envs_per_runner):
        sets = args.sets + ([f"env_config.num_actions={n}"] if n is not None else [])
        config = load_config(ROOT / args.config, {"clones": args.clones, "num_env_runners": runners,
                                                  "num_envs_per_env_runner": num_envs}, sets)
        if runners:  # two runners share this machine's cores with the driver
            config.num_cpus_per_env_runner = min(config.num_cpus_per_env_runner, 1.0 / runners)
        measured = {}
        for name, build in (("society", lambda: society_ppo_config(config).build_algo()),
                            ("single-agent PPO", lambda: monolithic_ppo_config(config).build_algo())):
            algo = build()
            measured[name] = measure(algo, config, args.iterations)
            algo.stop()
        size = count_primitives(config.society_config())
        for name, numbers in measured.items():
            row = {"env": config.env, "primitives": size, "bidders": size * args.clones if name == "society" else 1,
                   "env_runners": runners, "envs_per_runner": num_envs, "algo": name, **numbers,
                   "sample_ratio": numbers["sample_sps"] / measured["single-agent PPO"]["sample_sps"],
                   "train_ratio": numbers["train_sps"] / measured["single-agent PPO"]["train_sps"]}
            rows.append(row)
            print(" | ".join(_fmt(row[c]) for c in COLUMNS), flush=True)
    ray.shutdown()

    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {path}")
    return 0


def _fmt(value) -> str:
    return f"{value:13.2f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
