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

from rllib_society import AUCTIONS
from experiments.cli import add_shared_flags, shared_overrides
from experiments.config import ALGOS
from experiments.config_files import load_config, load_grid
from experiments.preflight import check_local_cpus

DEFAULT_CONFIG = "configs/chain.yaml"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shared_flags(parser, DEFAULT_CONFIG)
    parser.add_argument("--algo", choices=ALGOS, help="society, or the monolithic PPO baseline over the "
                        "same primitives (config key: algo)")
    parser.add_argument("--auction", choices=AUCTIONS, help="auction (config key: auction)")
    parser.add_argument("--clones", type=int, help="agent ids per primitive (config key: clones)")
    parser.add_argument("--dropout", type=float, help="agent dropout probability (config key: dropout)")
    parser.add_argument("--checkpoint-at-end", action=argparse.BooleanOptionalAction, default=None,
                        help="config key: checkpoint_at_end")
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
        **shared_overrides(args),
        **{key: getattr(args, key) for key in ("algo", "auction", "clones", "dropout", "checkpoint_at_end")},
    }
    try:
        if args.resume:
            config = resume_config(args)
        else:
            config = load_config(args.config, overrides, args.sets)
        grid = {} if args.resume else load_grid(args.config)
        if grid:
            from experiments.grid import expand_grid

            expand_grid(config, grid, 1)  # validates every trial before Ray starts
        check_local_cpus([config])
    except ValueError as error:
        parser.error(str(error))

    from experiments.reporting import WallClock, progress_line, results_table
    from experiments.training import train

    config.output = str(config.output_dir())  # resolve the default (timestamped) folder once
    output = config.output_dir()
    if grid:
        return train_grid(config, grid)
    what = (f"a society on {config.env} ({config.auction}, {config.clones} clone(s))"
            if config.algo == "society" else f"monolithic PPO on {config.env}")
    print(f"Training {what} "
          f"for {config.stop_timesteps:,} env steps; output: {output}", flush=True)
    clock = WallClock()
    summary = train(config, resume=args.resume,
                    on_result=lambda r: print(progress_line(r, config.stop_timesteps, clock), flush=True))
    print()
    print(results_table(summary))
    print(f"\nsummary: {output / 'summary.json'}")
    return 0


def train_grid(config, grid: dict[str, list]) -> int:
    """A YAML with a grid (e.g. the TwoRooms primitive tasks): one Tune trial per point, side by
    side as CPUs allow, each with its own checkpoint and summary (`tune_search.py --resume
    --output DIR` continues it)."""
    from experiments.search import search
    from experiments.search_results import report

    points = ", ".join(f"{k}: {v}" for k, v in grid.items())
    print(f"Training one {config.algo} per grid point ({points}) for {config.stop_timesteps:,} env "
          f"steps each; output: {config.output_dir()}", flush=True)
    table = search(config, grid, 1, on_event=lambda line: print(line, flush=True))
    return report(table, config.output_dir())


if __name__ == "__main__":
    sys.exit(main())
