"""A chaos run that loses nothing: training survives dead env runners and a dead driver.

On a local two-node Ray cluster (Ray's `cluster_utils`: a head and a worker node), `run.py` trains
a society with 4 env runners while this script

- every ``--kill-every`` seconds kills one env runner of the run (SIGKILL to a pid that the
  cluster's own actor table reports for a live `SocietyEnvRunner`; nothing is found by name),
- once, when the run has sampled half its budget, kills the driver (`run.py`, the process this
  script started) and continues the run with ``run.py --resume``,

then trains the same config undisturbed on the same cluster and prints

- the budget reached, and the env steps (auctions) sampled vs trained on (RLlib's counters),
- every bid row by its identity (episode, auction step, bidder; `rllib_society.rows`): both runs
  keep a row ledger, and the rows trained must be the rows sampled, none duplicated, none lost,
- the final result against the undisturbed run's,
- that every checkpoint the run wrote loads and its greedy bids are those the run logged at
  that iteration.

What a kill loses, by design: an env runner killed mid-``sample()`` takes its unfinished
auctions with it (they were never counted as sampled: RLlib counts what reaches the driver, and
the ledger what a ``sample()`` call returned); a killed driver loses the iterations since its
last checkpoint (``checkpoint_frequency``), which the resumed run samples afresh (new episodes)
and trains from the restored counters. A row in the ledger that no learner trained is "in
flight at a kill" when it is from the last ``sample()`` call of an env runner that was killed, or
of the killed driver's job (its results had not reached the learner); any other is lost.

Usage::

    python benchmarks/chaos.py                              # 500k env steps: ~5 minutes of chaos, then the undisturbed run
    python benchmarks/chaos.py --stop-timesteps 20000 --kill-every 10   # the short version (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from rllib_society import SocietyEnvRunner, compare_rows, read_ledger
from rllib_society.rows import SAMPLED as SAMPLED_ROWS, TRAINED as TRAINED_ROWS

ROOT = Path(__file__).resolve().parents[1]
SAMPLED = "env_runners/num_env_steps_sampled_lifetime"
TRAINED = "learners/__all_modules__/num_env_steps_trained_lifetime"
RESTARTS = "fault_tolerance/num_remote_worker_restarts"


def live_env_runner_pids() -> list[int]:
    """Pids of the live env runners on the cluster this process is connected to (its GCS actor
    table), i.e. of the one run this script started on it."""
    from ray._private import state

    actors = state.actors(actor_state_name="ALIVE").values()
    return [a["Pid"] for a in actors if a["ActorClassName"] == SocietyEnvRunner.__name__ and a["Pid"]]


def run_py(output: Path, address: str, args: argparse.Namespace, resume: bool = False) -> subprocess.Popen:
    """`run.py` on the cluster (its stdout, one line per iteration, is read by the caller)."""
    command = [sys.executable, "run.py", "--output", str(output), "--address", address]
    if resume:
        command.append("--resume")
    else:
        command += ["--config", args.config, "--stop-timesteps", str(args.stop_timesteps),
                    "--num-env-runners", str(args.env_runners), "--seed", str(args.seed),
                    "--set", f"checkpoint_frequency={args.checkpoint_frequency}", "--set", "checkpoints_to_keep=null",
                    "--set", f"num_cpus_per_env_runner={args.cpus_per_env_runner}",
                    "--set", f"row_ledger={ledger_folder(output)}"]
        command += [arg for item in args.set for arg in ("--set", item)]
    output.parent.mkdir(parents=True, exist_ok=True)
    with (output.parent / f"{output.name}{'-resume' if resume else ''}.stderr.log").open("w") as log:
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})


def ledger_folder(output: Path) -> Path:
    return output.parent / f"{output.name}-ledger"


def row_accounting(folder: Path, killed_runners: set[int], driver_killed: bool) -> dict:
    """Sampled against trained rows of one run, by identity, from its row ledger: ``rows``
    sampled, ``duplicated``, ``lost``, ``unsampled`` (`compare_rows`) and ``in_flight``, the
    lost rows that a kill explains (see the module's docstring), which are not counted lost."""
    files = {side: [(path, *path.stem.split("-")[1:]) for path in folder.glob(f"{side}-*.csv")]
             for side in (SAMPLED_ROWS, TRAINED_ROWS)}
    trained = [row["entry"] for path, *_ in files[TRAINED_ROWS] for row in read_ledger(path)]
    # The run's driver jobs in the order they started; all but the last were killed.
    started = {}
    for path, job, _ in files[SAMPLED_ROWS] + files[TRAINED_ROWS]:
        first = read_ledger(path)
        if first:
            started[job] = min(started.get(job, float("inf")), first[0]["time"])
    killed_jobs = set(sorted(started, key=started.get)[:-1]) if driver_killed else set()
    sampled, at_kills = [], []
    for path, job, pid in files[SAMPLED_ROWS]:
        rows = read_ledger(path)
        killed = int(pid) in killed_runners or job in killed_jobs
        last = rows[-1]["call"] if rows else None
        sampled += [row["entry"] for row in rows]
        at_kills += [row["entry"] for row in rows if killed and row["call"] == last]
    counts = compare_rows(sampled, trained)
    untrained_at_kills = compare_rows(at_kills, trained)["lost"]
    return {**counts, "lost": counts["lost"] - untrained_at_kills, "in_flight": untrained_at_kills,
            "jobs": len(started)}


def resumable(output: Path) -> bool:
    """Whether Tune saved the experiment's state after the trial's first checkpoint, so that
    ``--resume`` finds the trial and a checkpoint to continue from."""
    states = list(output.glob("experiment_state-*.json"))
    checkpoints = sorted((output / "trial").glob("checkpoint_*"))
    return bool(states and checkpoints) and max(p.stat().st_mtime for p in states) > checkpoints[0].stat().st_mtime


def sampled_so_far(line: str) -> int | None:
    """Env steps from a progress line (``iter  12 | env_steps  4,800 | ...``)."""
    if not line.startswith("iter"):
        return None
    return int(line.split("|")[1].split()[-1].replace(",", ""))


def chaos_run(output: Path, address: str, args: argparse.Namespace) -> dict:
    """The disturbed run: env runner kills throughout, one driver kill and a resume."""
    kills, driver_killed, stop = [], {}, threading.Event()

    def kill_runners():
        rng = random.Random(args.seed)
        while not stop.wait(args.kill_every):
            pids = live_env_runner_pids()
            if pids:
                pid = rng.choice(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append(pid)
                    print(f"  killed env runner pid {pid}", flush=True)
                except ProcessLookupError:
                    pass

    started = time.perf_counter()
    killer = threading.Thread(target=kill_runners, daemon=True)
    killer.start()
    driver = run_py(output, address, args)
    for line in driver.stdout:
        steps = sampled_so_far(line)
        if steps is not None and steps >= args.stop_timesteps // 2 and resumable(output):
            driver.kill()  # SIGKILL: no shutdown, no final checkpoint
            driver.wait()
            driver_killed = {"at_env_steps": steps, "seconds": time.perf_counter() - started}
            print(f"  killed the driver at {steps:,} env steps; resuming", flush=True)
            break
    if driver_killed:
        driver = run_py(output, address, args, resume=True)
        for _ in driver.stdout:
            pass
    code = driver.wait()
    stop.set()
    killer.join()
    return {"returncode": code, "runner_kills": len(kills), "killed_pids": kills, "driver_killed": driver_killed,
            "seconds": time.perf_counter() - started}


def undisturbed_run(output: Path, address: str, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    driver = run_py(output, address, args)
    for _ in driver.stdout:
        pass
    return {"returncode": driver.wait(), "seconds": time.perf_counter() - started}


def checkpoint_bids(output: Path) -> list[dict]:
    """For every checkpoint of the run: its iteration and the largest difference between the
    greedy bids its modules give now and those the run logged at that iteration."""
    from experiments.algo_config import build_algo_config
    from experiments.config_files import load_config
    from experiments.evaluation import coverable_q_star, eval_max_steps, evaluate, evaluation_env
    from rllib_society import load_modules

    config = load_config(output / "config.yaml")
    society_config = dict(build_algo_config(config).env_config)
    env = evaluation_env(society_config)
    progress = pd.read_csv(output / "progress.csv")
    checks = []
    for checkpoint in sorted((output / "trial").glob("checkpoint_*")):
        with (checkpoint / "algorithm_state.pkl").open("rb") as file:
            iteration = pickle.load(file)["training_iteration"]
        evaluation = evaluate(load_modules(checkpoint), env, episodes=society_config["eval_episodes"],
                              seed=config.seed, q_values=coverable_q_star(society_config),
                              max_env_steps=eval_max_steps(society_config))
        logged = progress[progress["training_iteration"] == iteration].iloc[-1]
        diffs = [abs(bid - logged[f"society/greedy_bid/s{s}/{p}"])
                 for s, bids in evaluation["mean_bids"].items() for p, bid in bids.items()]
        checks.append({"checkpoint": checkpoint.name, "iteration": iteration, "max_bid_diff": max(diffs)})
    return checks


def report(output: Path) -> dict:
    """The last iteration's counters and result of a run."""
    last = pd.read_csv(output / "progress.csv").iloc[-1]
    summary = json.loads((output / "summary.json").read_text())
    return {"sampled": int(last[SAMPLED]), "trained": int(last[TRAINED]),
            "restarts": int(last.get(RESTARTS, 0)), "greedy_return": summary["greedy_return"],
            "bid_error": summary["bid_error"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/chain.yaml")
    parser.add_argument("--stop-timesteps", type=int, default=500_000, help="the run's budget (env steps)")
    parser.add_argument("--env-runners", type=int, default=4)
    parser.add_argument("--cpus-per-env-runner", type=float, default=0.5)
    parser.add_argument("--kill-every", type=float, default=30.0, help="seconds between env runner kills")
    parser.add_argument("--checkpoint-frequency", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bid-tolerance", type=float, default=0.05,
                        help="largest |bid error (chaos) - bid error (undisturbed)| called noise")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both runs, as run.py's --set (repeatable)")
    parser.add_argument("--output", default=None, help="folder for both runs (default: a temp folder)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)

    import ray
    from ray.cluster_utils import Cluster

    folder = Path(args.output or tempfile.mkdtemp(prefix="chaos-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        print(f"two-node cluster at {cluster.address}; runs in {folder}", flush=True)
        chaos = chaos_run(folder / "chaos", cluster.address, args)
        print(f"chaos run done in {chaos['seconds']:.0f} s; the undisturbed run", flush=True)
        calm = undisturbed_run(folder / "undisturbed", cluster.address, args)
    finally:
        ray.shutdown()
        cluster.shutdown()
    for name, run in (("chaos", chaos), ("undisturbed", calm)):
        if run["returncode"] != 0:
            logs = sorted(folder.glob(f"{name}*.stderr.log"), key=lambda log: log.stat().st_mtime)
            print(f"the {name} run failed (exit {run['returncode']}); its stderr: {', '.join(map(str, logs))}\n"
                  + logs[-1].read_text()[-3000:], file=sys.stderr)
            return 1
    result = {"chaos": {**chaos, **report(folder / "chaos")}, "undisturbed": {**calm, **report(folder / "undisturbed")},
              "checkpoints": checkpoint_bids(folder / "chaos"),
              "rows": {"chaos": row_accounting(ledger_folder(folder / "chaos"), set(chaos["killed_pids"]),
                                               bool(chaos["driver_killed"])),
                       "undisturbed": row_accounting(ledger_folder(folder / "undisturbed"), set(), False)}}
    c, u = result["chaos"], result["undisturbed"]
    ok = {
        "full budget": c["returncode"] == 0 and c["sampled"] >= args.stop_timesteps,
        "0 auctions lost (counters)": c["sampled"] == c["trained"],
        "0 rows duplicated or lost (identities)": all(
            rows["rows"] > 0 and rows["duplicated"] == rows["lost"] == rows["unsampled"] == 0
            for rows in result["rows"].values()),
        "undisturbed: every row trained": result["rows"]["undisturbed"]["in_flight"] == 0,
        "result within noise": c["greedy_return"] == u["greedy_return"]
                               and abs(c["bid_error"] - u["bid_error"]) <= args.bid_tolerance,
        "all checkpoints load with their bids": all(x["max_bid_diff"] < 1e-4 for x in result["checkpoints"]),
    }
    result["ok"] = ok
    print(f"\nbudget {args.stop_timesteps:,} env steps, {args.env_runners} env runners on 2 nodes")
    print(f"chaos:       {c['runner_kills']} env runners killed ({c['restarts']} restarts), driver killed at "
          f"{c['driver_killed'].get('at_env_steps', 0):,} env steps and resumed; {c['seconds']:.0f} s")
    print(f"             env steps sampled {c['sampled']:,} | trained on {c['trained']:,} | "
          f"greedy return {c['greedy_return']:.3f} | bid error {c['bid_error']:.4f}")
    print(f"undisturbed: env steps sampled {u['sampled']:,} | trained on {u['trained']:,} | "
          f"greedy return {u['greedy_return']:.3f} | bid error {u['bid_error']:.4f}; {u['seconds']:.0f} s")
    for name, rows in result["rows"].items():
        print(f"rows ({name}): {rows['rows']:,} sampled | duplicated {rows['duplicated']} | lost {rows['lost']} | "
              f"trained, never sampled {rows['unsampled']} | in flight at a kill {rows['in_flight']:,}")
    print(f"checkpoints: {len(result['checkpoints'])} written, all load; largest |bid - logged bid| "
          f"{max((x['max_bid_diff'] for x in result['checkpoints']), default=float('nan')):.2e}")
    for name, passed in ok.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
