"""Compare societies with a Ray Tune grid: auction types x clone counts x seeds (x any config key).

How to run this script
----------------------
``python tune_search.py --config configs/chain.yaml --auction v ccv bb env --clones 1 2
--num-samples 3`` trains 24 societies (each with its own seed), as many at once as Ray has CPUs
for. ``--grid key=v1,v2`` adds any config key to the grid (``--grid lr=1e-3,3e-4``,
``--grid env_config.<name>=a,b``). Flags shared with run.py (``--stop-timesteps``,
``--num-env-runners``, ``--output``, ``--address``, ``--set``) mean the same here.
``--resume --output DIR`` continues an interrupted search without rerunning finished trials.

Results to expect
-----------------
One line per trial start and finish, then a table grouped by auction and clones (mean ± std
over seeds). The output folder holds ``results.csv`` (one row per trial, failed ones with their
error), ``summary.md``, ``learning_curves.png``, ``bid_error.png`` and one Tune folder per trial
(TensorBoard events, progress.csv, summary.json, bids.png): ``tensorboard --logdir DIR`` shows
all trials side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rllib_society import AUCTIONS
from experiments.cli import add_shared_flags, shared_overrides
from experiments.config_files import load_config, load_grid
from experiments.preflight import check_local_cpus

DEFAULT_CONFIG = "configs/chain.yaml"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shared_flags(parser, DEFAULT_CONFIG)
    parser.add_argument("--auction", nargs="+", choices=AUCTIONS, help="auctions to compare")
    parser.add_argument("--clones", nargs="+", type=int, help="clone counts to compare")
    parser.add_argument("--num-samples", type=int, default=1, help="seeds per grid point (default: 1)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="another config key to vary, values parsed as YAML; repeatable")
    parser.add_argument("--max-concurrent-trials", type=int,
                        help="cap on trials running at once (default: as many as the CPUs allow)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted search in --output with its own saved grid")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)

    from experiments.grid import expand_grid, parse_grid
    from experiments.search import load_search, search
    from experiments.search_results import report

    try:
        if args.resume:
            if not args.output:
                raise ValueError("--resume needs --output, the folder of the search to continue.")
            base, grid, num_samples = load_search(Path(args.output))
            base.output, base.address = str(Path(args.output).resolve()), args.address
        else:
            base = load_config(args.config, shared_overrides(args), args.sets)
            grid = load_grid(args.config)
            if args.auction:
                grid["auction"] = list(dict.fromkeys(args.auction))
            if args.clones:
                grid["clones"] = list(dict.fromkeys(args.clones))
            grid.update(parse_grid(args.grid))
            num_samples = args.num_samples
            if base.output is None:
                base.output = str(Path("runs", f"search__{base.env.replace(':', '_')}__"
                                              f"{time.strftime('%Y%m%d-%H%M%S')}").resolve())
        if args.max_concurrent_trials is not None and args.max_concurrent_trials < 1:
            raise ValueError(f"--max-concurrent-trials={args.max_concurrent_trials} is not allowed; "
                             "it must be >= 1 (or left out: as many as the CPUs allow).")
        trials = expand_grid(base, grid, num_samples)  # validates every trial before Ray starts
        check_local_cpus(trials)
    except ValueError as error:
        parser.error(str(error))

    output = base.output_dir()
    print(f"Searching {len(trials)} societies on {base.env} "
          f"({', '.join(f'{k}: {v}' for k, v in grid.items()) or 'no grid'}; {num_samples} seed(s)), "
          f"{base.stop_timesteps:,} env steps each; output: {output}", flush=True)
    table = search(base, grid, num_samples, resume=args.resume,
                   max_concurrent_trials=args.max_concurrent_trials,
                   on_event=lambda line: print(line, flush=True))
    return report(table, output)

if __name__ == "__main__":
    sys.exit(main())
