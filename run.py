"""Train a society of bidding primitives (Chang et al., ICML 2020) with RLlib's multi-agent PPO.

How to run this script
----------------------
``python run.py`` trains the default experiment (Chain, credit-conserving Vickrey, 2 clones) on an
embedded local Ray. ``python run.py --config configs/bandit.yaml`` runs another experiment;
flags override the YAML, and ``--set key=value`` overrides any config key (last), e.g.
``--set lr=3e-4`` or ``--env FrozenLake-v1 --set env_config.is_slippery=false``.
``--address HOST:PORT`` runs on an existing Ray cluster; ``--resume --output DIR`` continues an
interrupted run from its last checkpoint.

Results to expect
-----------------
One progress line per iteration, then a results table. The output folder holds ``summary.json``,
``bids.png`` (mean bids per state over training against dashed Q* lines), ``config.yaml`` and
``trial/`` (progress.csv, TensorBoard events, checkpoints). On Chain the greedy society walks
right to the goal (return 0.8 in 5 steps) and its winning bids approach Q*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rllib_society.auction import AUCTIONS
from rllib_society.config import load_config

DEFAULT_CONFIG = "configs/chain.yaml"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="experiment YAML (default: %(default)s)")
    parser.add_argument("--env", help="gymnasium id with Discrete actions (config key: env)")
    parser.add_argument("--auction", choices=AUCTIONS, help="auction (config key: auction)")
    parser.add_argument("--clones", type=int, help="agent ids per primitive (config key: clones)")
    parser.add_argument("--dropout", type=float, help="agent dropout probability (config key: dropout)")
    parser.add_argument("--stop-iters", type=int, help="config key: stop_iters")
    parser.add_argument("--stop-timesteps", type=int, help="env-step budget (config key: stop_timesteps)")
    parser.add_argument("--num-env-runners", type=int, help="config key: num_env_runners")
    parser.add_argument("--num-envs-per-env-runner", type=int, help="config key: num_envs_per_env_runner")
    parser.add_argument("--seed", type=int, help="config key: seed")
    parser.add_argument("--checkpoint-at-end", action=argparse.BooleanOptionalAction, default=None,
                        help="config key: checkpoint_at_end")
    parser.add_argument("--output", help="output folder (config key: output)")
    parser.add_argument("--address", help="existing Ray cluster, e.g. 127.0.0.1:6379 (config key: address)")
    parser.add_argument("--storage-path", help="folder every node can reach for trial folders and "
                        "checkpoints (default: inside --output; config key: storage_path)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, parsed as YAML; repeatable")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --output from its last checkpoint, "
                             "with its own saved config")
    return parser


def resume_config(args: argparse.Namespace):
    """The interrupted run's own resolved config (its config.yaml), so a resumed run trains on
    exactly what it started with; only --address may change."""
    if not args.output:
        raise ValueError("--resume needs --output, the folder of the run to continue.")
    saved = Path(args.output) / "config.yaml"
    if not saved.is_file():
        raise ValueError(f"--resume: {saved} does not exist; is --output the folder of a run?")
    return load_config(saved, {"output": args.output, "address": args.address})


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    overrides = {
        key: getattr(args, key)
        for key in ("env", "auction", "clones", "dropout", "stop_iters", "stop_timesteps",
                    "num_env_runners", "num_envs_per_env_runner", "seed", "storage_path", "checkpoint_at_end",
                    "output", "address")
    }
    try:
        if args.resume:
            config = resume_config(args)
        else:
            config = load_config(args.config, overrides, args.sets)
    except ValueError as error:
        parser.error(str(error))

    from rllib_society.reporting import progress_line, results_table
    from rllib_society.training import train

    config.output = str(config.output_dir())  # resolve the default (timestamped) folder once
    output = config.output_dir()
    print(f"Training a society on {config.env} ({config.auction}, {config.clones} clone(s)) "
          f"for {config.stop_timesteps:,} env steps; output: {output}", flush=True)
    summary = train(config, resume=args.resume, on_result=lambda r: print(progress_line(r), flush=True))
    print()
    print(results_table(summary))
    print(f"\nsummary: {output / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
