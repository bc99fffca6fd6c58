"""Compare finished runs: one curve per group of runs (median and min-max band over its seeds)
of any progress metric against env steps, and a table of when each run first reached a target
and stayed there.

    python -m experiments.compare --group society=runs/a_s0,runs/a_s1 --group flat=runs/b_s0 \\
        --metric society/greedy_success --target 0.9 --output docs/curves.png

Reads each run's ``progress.csv`` (as `run.py` writes it). The x axis is env steps counted in
finished episodes (`EPISODE_ENV_STEPS`), which includes the env steps options take, so
societies of options and flat policies compare on the same axis.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.reporting import EPISODE_ENV_STEPS, evaluated_rows, steps_to_target

#: Points of the common x grid the group medians are drawn on.
GRID_POINTS = 200


def compare(groups: dict[str, list[Path]], metric: str, target: float | None, output: Path,
            title: str = "") -> pd.DataFrame:
    """Plots each group's curves to `output` (PNG) and returns one row per run: group, run,
    final value, steps to the target, total env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 3.8))
    rows = []
    for k, (label, runs) in enumerate(groups.items()):
        progresses = [evaluated_rows(pd.read_csv(Path(run) / "progress.csv"), metric) for run in runs]
        end = max(p[EPISODE_ENV_STEPS].max() for p in progresses)
        grid = np.linspace(0, end, GRID_POINTS)
        curves = np.array([np.interp(grid, p[EPISODE_ENV_STEPS], p[metric]) for p in progresses])
        axis.plot(grid, np.median(curves, axis=0), color=f"C{k}", label=f"{label} ({len(runs)} runs)")
        axis.fill_between(grid, curves.min(axis=0), curves.max(axis=0), color=f"C{k}", alpha=0.2)
        for run, progress in zip(runs, progresses):
            rows.append({
                "group": label, "run": str(run), "final": float(progress[metric].iloc[-1]),
                "steps_to_target": steps_to_target(progress, target, metric, EPISODE_ENV_STEPS),
                "env_steps": int(progress[EPISODE_ENV_STEPS].iloc[-1]),
            })
    if target is not None:
        axis.axhline(target, color="k", linewidth=0.7)
    axis.set_xlabel("env steps")
    axis.set_ylabel(metric.rsplit("/", 1)[-1])
    axis.legend(fontsize=7)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", required=True, metavar="LABEL=RUN,RUN",
                        help="a label and the output folders of its runs (seeds)")
    parser.add_argument("--metric", default="society/greedy_success")
    parser.add_argument("--target", type=float)
    parser.add_argument("--title", default="")
    parser.add_argument("--output", required=True, help="PNG to write (a CSV beside it)")
    args = parser.parse_args(argv)
    groups = {}
    for item in args.group:
        label, sep, runs = item.partition("=")
        if not sep or not runs:
            parser.error(f"--group expects LABEL=RUN[,RUN...], got {item!r}")
        missing = [r for r in runs.split(",") if not (Path(r) / "progress.csv").is_file()]
        if missing:
            parser.error(f"--group {label}: no progress.csv in {', '.join(missing)}")
        groups[label] = [Path(r) for r in runs.split(",")]
    output = Path(args.output)
    table = compare(groups, args.metric, args.target, output, args.title)
    table.to_csv(output.with_suffix(".csv"), index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
