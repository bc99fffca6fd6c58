"""Env steps per second of the society against plain single-agent RLlib PPO, interleaved.

For every setting (primitives x env runners x envs per runner) the script builds, from the same
``--config`` (network, batch, PPO settings), the society on the fast path (`SocietyEnvRunner`,
`SocietyPPOLearner`), the society on RLlib's stock multi-agent path (``--no-stock`` skips it) and
single-agent PPO that picks the env action itself (the monolithic baseline). Machines are noisy
(single-agent PPO's own speed moved by a third between runs), so the measurements interleave:
each of ``--rounds`` rounds measures every algorithm in turn (each round starting one algorithm
further along), each for at least ``--seconds``,

- ``sample``: env steps per second of sampling alone (RLlib's `synchronous_parallel_sample`,
  what PPO calls each iteration), then
- ``train``: env steps per second of whole training iterations (sampling plus update),

and each round's ratio society / single-agent is taken within the round. The table reports the
median ratio over rounds with its range (min-max), and the peak resident memory of the driver
(which holds every algorithm of the setting), of a learner and of an env runner (the last two
when they are remote: ``--env-runners 1 --set rllib.num_learners=1``).

Usage::

    python benchmarks/throughput.py                                # primitives 2..32, local
    python benchmarks/throughput.py --primitives 4 32 --rounds 7
    python benchmarks/throughput.py --primitives 4 --env-runners 0 2 --envs-per-env-runner 1 8
    python benchmarks/throughput.py --primitives 128 1024 --no-stock --env-runners 1 \
        --set rllib.num_learners=1 --csv benchmarks/results/throughput_big.csv

``--exploration scored:0.3`` (repeatable) adds the fast society with that exploration
(`rllib_society.exploration`) to the same rounds, and ``--variant value_range=adaptive`` (any
``--set`` overrides, comma-separated; repeatable) the fast society with those settings; their rows
also carry the median per-round ratio to the plain fast society (``ratio_to_fast``): what the
setting costs.

Chain with ``num_actions = primitives`` (actions beyond Left/Right stay in place) is the env.
Writes every measurement to ``--csv`` and the summary to the same name with ``_summary``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import resource
import statistics
import sys
import time
from pathlib import Path

from experiments.config_files import load_config

ROOT = Path(__file__).resolve().parents[1]

BASELINE = "single-agent PPO"
MEMORY_COLUMNS = ["driver_mb", "learner_mb", "env_runner_mb"]
FAST = "society (fast)"
STOCK = "society (stock)"
SUMMARY_COLUMNS = ["primitives", "bidders", "env_runners", "envs_per_runner", "algo", "mode", "median_sps",
                   "median_ratio", "ratio_min", "ratio_max", "ratio_to_fast", "rounds", "build_s", *MEMORY_COLUMNS]


def peak_rss_mb(*_) -> float:
    """This process's peak resident memory (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory(algo) -> dict[str, float]:
    """Peak resident memory (MB) of the driver, and of the largest remote learner and env runner
    (NaN when there is none)."""
    runners = algo.env_runner_group.foreach_env_runner(peak_rss_mb, local_env_runner=False)
    learners = []
    if algo.learner_group.is_remote:
        learners = [r.get() for r in algo.learner_group.foreach_learner(peak_rss_mb).result_or_errors]
    return {"driver_mb": peak_rss_mb(), "learner_mb": max(learners, default=math.nan),
            "env_runner_mb": max(runners, default=math.nan)}


def sample_sps(algo, config, seconds: float) -> float:
    """Env steps/s of sampling alone, as PPO's training step samples, for at least `seconds`."""
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        episodes, _ = synchronous_parallel_sample(
            worker_set=algo.env_runner_group, max_env_steps=config.train_batch_size_per_learner,
            sample_timeout_s=600, _uses_new_env_runners=True, _return_metrics=True,
        )
        steps += sum(e.env_steps() for e in episodes)
    return steps / (time.perf_counter() - started)


def train_sps(algo, seconds: float) -> float:
    """Env steps/s of whole training iterations, for at least `seconds`."""
    before = algo.train()["num_env_steps_sampled_lifetime"]
    started = time.perf_counter()
    while True:
        after = algo.train()["num_env_steps_sampled_lifetime"]
        if time.perf_counter() - started >= seconds:
            return (after - before) / (time.perf_counter() - started)


def build(config, algo: str):
    from experiments.algo_config import monolithic_ppo_config, society_ppo_config

    if algo == BASELINE:
        return monolithic_ppo_config(config).build_algo()
    return society_ppo_config(config.model_copy(update={"sampler": "stock" if algo == STOCK else "fast"})).build_algo()


def rotated(names: list[str], round_: int) -> list[str]:
    """The order in which round `round_` measures the algorithms: each round starts one further
    along, so that no algorithm is always measured first or last (a position in the round can
    cost or gain a few percent by itself)."""
    start = round_ % len(names)
    return names[start:] + names[:start]


def fast_variants(explorations: list[str], variants: list[str]) -> dict[str, list[str]]:
    """``{"society (fast, scored 0.3)": ["exploration={kind: scored, rate: 0.3}"], ...}``:
    the ``--set`` overrides of each extra fast society, from ``--exploration KIND:RATE`` and
    ``--variant KEY=VALUE,KEY=VALUE``."""
    named = {}
    for spec in explorations:
        kind, _, rate = spec.partition(":")
        try:
            named[f"{FAST[:-1]}, {kind} {float(rate):g})"] = [f"exploration={{kind: {kind}, rate: {float(rate)}}}"]
        except ValueError:
            raise SystemExit(f"--exploration {spec!r}: expected KIND:RATE, e.g. scored:0.3") from None
    for spec in variants:
        sets = [s.strip() for s in spec.split(",") if s.strip()]
        if not sets or not all("=" in s for s in sets):
            raise SystemExit(f"--variant {spec!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. value_range=adaptive")
        named[f"{FAST[:-1]}, {', '.join(sets)})"] = sets
    return named


def summarize(rows: list[dict]) -> list[dict]:
    """Median env steps/s and median per-round ratio to single-agent PPO, with its range."""
    summary = []
    keys = sorted({(r["primitives"], r["env_runners"], r["envs_per_runner"], r["algo"], r["mode"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], k[4], k[3] != "society (fast)", k[3]))
    for primitives, runners, envs, algo, mode in keys:
        mine = [r for r in rows if (r["primitives"], r["env_runners"], r["envs_per_runner"], r["algo"], r["mode"])
                == (primitives, runners, envs, algo, mode)]
        base = {r["round"]: r["sps"] for r in rows if (r["primitives"], r["env_runners"], r["envs_per_runner"],
                                                         r["algo"], r["mode"]) == (primitives, runners, envs, BASELINE, mode)}
        ratios = [r["sps"] / base[r["round"]] for r in mine]
        fast = {r["round"]: r["sps"] for r in rows if (r["primitives"], r["env_runners"], r["envs_per_runner"],
                                                         r["algo"], r["mode"]) == (primitives, runners, envs, FAST, mode)}
        summary.append({"primitives": primitives, "bidders": mine[0]["bidders"], "env_runners": runners,
                        "envs_per_runner": envs, "algo": algo, "mode": mode,
                        "median_sps": statistics.median(r["sps"] for r in mine),
                        "median_ratio": statistics.median(ratios), "ratio_min": min(ratios),
                        "ratio_max": max(ratios),
                        "ratio_to_fast": (statistics.median(r["sps"] / fast[r["round"]] for r in mine)
                                          if fast and algo.startswith(FAST[:-1]) and algo != FAST else math.nan),
                        "rounds": len(mine), "build_s": mine[0]["build_s"],
                        **{k: max(r[k] for r in mine) for k in MEMORY_COLUMNS}})
    return summary


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def markdown(summary: list[dict]) -> str:
    lines = ["| primitives (bidders) | runners x envs | algo | mode | env steps/s (median) | ratio to single-agent: median (min-max) "
             "| ratio to fast society | build s | peak MB: driver / learner / env runner |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        memory = " / ".join("-" if math.isnan(s[k]) else f"{s[k]:,.0f}" for k in MEMORY_COLUMNS)
        to_fast = "-" if math.isnan(s["ratio_to_fast"]) else f"{s['ratio_to_fast']:.3f}"
        lines.append(f"| {s['primitives']} ({s['bidders']}) | {s['env_runners']} x {s['envs_per_runner']} | {s['algo']} | "
                     f"{s['mode']} | {s['median_sps']:,.0f} | {s['median_ratio']:.3f} ({s['ratio_min']:.3f}-{s['ratio_max']:.3f}) "
                     f"| {to_fast} | {s['build_s']:.0f} | {memory} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/chain.yaml")
    parser.add_argument("--primitives", type=int, nargs="+", default=[2, 4, 8, 16, 32],
                        help="society sizes (Chain's num_actions)")
    parser.add_argument("--env-runners", type=int, nargs="+", default=[0])
    parser.add_argument("--envs-per-env-runner", type=int, nargs="+", default=None,
                        help="default: the config's num_envs_per_env_runner")
    parser.add_argument("--clones", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (A, B, A, B, ...)")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum length of one measurement")
    parser.add_argument("--no-stock", dest="stock", action="store_false", help="skip RLlib's stock multi-agent path")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--exploration", action="append", default=[], metavar="KIND:RATE",
                        help="also measure the fast society with this exploration, e.g. scored:0.3 (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also measure the fast society with these overrides, e.g. value_range=adaptive (repeatable)")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="logical CPUs of the embedded Ray (default: the machine's); the algorithms run one at a "
                             "time, so e.g. 2-CPU learners of both fit on a 2-core machine with --num-cpus 6")
    parser.add_argument("--csv", default=str(ROOT / "benchmarks" / "results" / "throughput.csv"))
    args = parser.parse_args(argv)

    base = load_config(ROOT / args.config, {"clones": args.clones}, args.sets)
    envs_per_runner = args.envs_per_env_runner or [base.num_envs_per_env_runner]
    variants = fast_variants(args.exploration, args.variant)
    algos = [FAST, *variants, *([STOCK] if args.stock else []), BASELINE]

    import ray

    from experiments.ray_setup import init_ray

    init_ray(num_cpus=args.num_cpus)
    rows = []
    for n, runners, num_envs in itertools.product(args.primitives, args.env_runners, envs_per_runner):
        built, build_s = {}, {}
        for name in algos:
            config = load_config(ROOT / args.config, {"clones": args.clones, "num_env_runners": runners,
                                                      "num_envs_per_env_runner": num_envs},
                                 [*args.sets, f"env_config.num_actions={n}", *variants.get(name, [])])
            if runners:  # the runners share this machine's cores with the driver
                config.num_cpus_per_env_runner = min(config.num_cpus_per_env_runner, 1.0 / runners)
            started = time.perf_counter()
            built[name] = build(config, name)
            build_s[name] = time.perf_counter() - started
        for algo in built.values():
            algo.train()  # warm-up: first-iteration set-up is not throughput
        for round_, mode in itertools.product(range(args.rounds), ("sample", "train")):
            for name in rotated(list(built), round_):
                algo = built[name]
                sps = sample_sps(algo, config, args.seconds) if mode == "sample" else train_sps(algo, args.seconds)
                rows.append({"primitives": n, "bidders": n * args.clones if name != BASELINE else 1,
                             "env_runners": runners, "envs_per_runner": num_envs, "algo": name, "mode": mode,
                             "round": round_, "sps": sps, "build_s": build_s[name], **peak_memory(algo)})
                print(f"primitives {n:3d} | runners {runners} x {num_envs} | round {round_} | {mode:6s} | "
                      f"{name:16s} | {sps:8.0f} env steps/s", flush=True)
        for algo in built.values():
            algo.stop()
    ray.shutdown()

    path = Path(args.csv)
    write_csv(path, rows, list(rows[0]))
    summary = summarize(rows)
    write_csv(path.with_name(path.stem + "_summary.csv"), summary, SUMMARY_COLUMNS)
    print("\n" + markdown(summary))
    print(f"\nwrote {path} and {path.with_name(path.stem + '_summary.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
