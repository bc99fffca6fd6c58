"""One table row per setting from the ``summary.json`` of its runs (one run per seed): the
tables of ``docs/results.md``.

    python -m experiments.seed_table --group none='runs/chain_none/seed*' \\
        --group scored='runs/chain_scored/seed*' --csv docs/results/chain_exploration.csv

Prints a markdown table: greedy return (mean, and how many seeds reached the config's
``target_return``), ``bid_error`` and ``bid_error_all`` (median and max over seeds), env steps to
the target (median over the seeds that reached it) and wall seconds (mean). The CSV holds one
row per run, named by its folder relative to the current directory.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

#: Per-run columns taken from ``summary.json``.
COLUMNS = ("seed", "greedy_return", "bid_error", "bid_error_all", "steps_to_target", "env_steps", "wall_seconds",
           "exploration_auctions", "offers_bought", "market_balance", "bonus_paid")


def run_rows(group: str, pattern: str) -> list[dict]:
    """One row per run folder matching `pattern` that holds a ``summary.json``."""
    rows = []
    for folder in sorted(glob.glob(pattern)):
        summary_file = Path(folder) / "summary.json"
        if not summary_file.exists():
            continue
        summary = json.loads(summary_file.read_text())
        config = yaml.safe_load((Path(folder) / "config.yaml").read_text()) if (Path(folder) / "config.yaml").exists() else {}
        row = {"group": group, "run": os.path.relpath(folder), "target_return": config.get("target_return")}
        row.update({key: summary.get(key) for key in COLUMNS})
        rows.append(row)
    return rows


def table(runs: pd.DataFrame) -> str:
    """The markdown table, one row per group, in the order the groups came."""
    lines = ["| setting | seeds | greedy return (mean) | optimal | bid_error median (max) | "
             "bid_error_all median (max) | env steps to optimal, median | wall s (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    for group, rows in runs.groupby("group", sort=False):
        target = rows["target_return"].iloc[0]
        optimal = int((rows["greedy_return"] >= target - 1e-6).sum()) if target is not None else None
        reached = rows["steps_to_target"].dropna()

        def spread(column: str) -> str:
            values = rows[column].dropna()
            return f"{values.median():.3f} ({values.max():.3f})" if len(values) else "n/a"

        lines.append(
            f"| {group} | {len(rows)} | {rows['greedy_return'].mean():.3f} | "
            f"{'n/a' if optimal is None else f'{optimal} of {len(rows)}'} | {spread('bid_error')} | "
            f"{spread('bid_error_all')} | {f'{reached.median():,.0f}' if len(reached) else 'never'}"
            f"{f' ({len(reached)} of {len(rows)})' if 0 < len(reached) < len(rows) else ''} | "
            f"{rows['wall_seconds'].mean():.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", required=True, metavar="NAME=GLOB",
                        help="a setting and the glob of its run folders (quote it); repeatable")
    parser.add_argument("--csv", help="write one row per run here")
    args = parser.parse_args(argv)
    rows = []
    for spec in args.group:
        name, _, pattern = spec.partition("=")
        if not pattern:
            parser.error(f"--group {spec!r}: expected NAME=GLOB")
        found = run_rows(name, pattern)
        if not found:
            parser.error(f"--group {spec!r}: no run folder with a summary.json matches {pattern!r}")
        rows += found
    runs = pd.DataFrame(rows)
    print(table(runs))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        runs.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
