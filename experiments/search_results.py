"""A search's results: one row per trial (results.csv), a summary grouped by setting with mean
and spread over seeds (summary.md), plots of learning curves and bid errors, and the report
printed at the end."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.config import ExperimentConfig
from experiments.grid import grid_value
from experiments.reporting import ENV_RETURN, ENV_STEPS, ITERATION, read_progress

#: Columns of results.csv before the grid keys' own.
RESULT_COLUMNS = ["trial", "status", "auction", "clones", "seed", "env_steps", "iterations",
                  "final_return", "best_return", "greedy_return", "greedy_success", "bid_error",
                  "inverse_rate", "steps_to_target", "wall_seconds", "error", "path"]
#: Metrics summary.md aggregates over seeds.
SUMMARY_METRICS = ["greedy_return", "greedy_success", "bid_error", "inverse_rate", "steps_to_target", "final_return",
                   "best_return"]


def trial_wall_seconds(result_file: Path) -> float:
    """A trial's wall seconds from its first to its last result (each stamped when its iteration
    ended), plus the first iteration's own time. Tune's ``time_total_s`` leaves out the greedy
    evaluation that runs after each iteration is timed (`reporting.WallClock`)."""
    progress = read_progress(result_file)
    if "timestamp" not in progress or progress.empty:
        return 0.0
    first = progress.iloc[0]
    return float(progress["timestamp"].iloc[-1] - first["timestamp"] + first.get("time_this_iter_s", 0.0))


def write_results(results, by_name: dict[str, ExperimentConfig], grid_keys: list[str], output: Path,
                  title: str) -> pd.DataFrame:
    """Writes a search's results.csv, summary.md (headed by `title`), learning_curves.png and
    bid_error.png into `output`, and each finished trial's own outputs; returns the table.

    Args:
        results: Tune's `ResultGrid` of the search.
        by_name: trial folder name -> its config (trials never started appear as PENDING).
        grid_keys: the searched keys (columns of the table, groups of the summary).
    """
    rows = {}
    for result in results:
        name = Path(result.path).name
        rows[name] = _result_row(by_name[name], result, grid_keys)
    for name, config in by_name.items():  # trials an interrupted search never started
        rows.setdefault(name, {**_trial_columns(config, grid_keys), "trial": name, "status": "PENDING"})
    table = pd.DataFrame(list(rows.values()))
    columns = RESULT_COLUMNS[:3] + [k for k in grid_keys if k not in RESULT_COLUMNS] + RESULT_COLUMNS[3:]
    table = table.reindex(columns=columns).sort_values(["auction", "clones", "seed"])
    table.to_csv(output / "results.csv", index=False)
    group_keys = list(dict.fromkeys(["auction", "clones", *[k for k in grid_keys if k != "seed"]]))
    summary = summarize(table, group_keys)
    (output / "summary.md").write_text(f"{title}\n\n{summary}\n")
    plot_learning_curves(results, output / "learning_curves.png", by_name)
    plot_bid_errors(table, output / "bid_error.png")
    return table


def _result_row(config: ExperimentConfig, result, grid_keys: list[str]) -> dict[str, Any]:
    """One results.csv row; trials with results also get their own summary.json, progress.csv
    and bids.png in their folder."""
    from experiments.training import write_trial_outputs

    row = {**_trial_columns(config, grid_keys), "trial": Path(result.path).name, "path": result.path}
    if result.error is not None:
        return {**row, "status": "ERROR", "error": error_message(result.error)}
    progress_file = Path(result.path) / "result.json"
    if not progress_file.exists():
        return {**row, "status": "PENDING"}
    summary, progress = write_trial_outputs(config, result, Path(result.path), trial_wall_seconds(progress_file))
    return {
        **row,
        # Tune marks the last result of a trial that met its stop criteria; an interrupted
        # search leaves the others UNFINISHED (or PENDING) until --resume.
        "status": "TERMINATED" if result.metrics.get("done") else "UNFINISHED",
        "env_steps": summary["env_steps"],
        "iterations": summary["iterations"],
        "final_return": summary["train_return_mean"],
        "best_return": float(progress[ENV_RETURN].max()) if ENV_RETURN in progress else None,
        "greedy_return": summary["greedy_return"],
        "greedy_success": summary.get("greedy_success"),
        "bid_error": summary.get("bid_error"),
        "inverse_rate": summary.get("inverse_rate"),  # envs with test episodes (Mental Rotation)
        "steps_to_target": summary["steps_to_target"],
        "wall_seconds": summary["wall_seconds"],
        "error": "",
    }


def error_message(error: BaseException) -> str:
    """The most telling line of a trial's error: the last ``SomeError: message`` line of its
    traceback (RLlib re-raises env errors as a bare ``RuntimeError``), else its last line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    described = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\w*: \S", line)]
    return (described or lines or [repr(error)])[-1]


def _trial_columns(config: ExperimentConfig, grid_keys: list[str]) -> dict[str, Any]:
    return {"auction": config.auction, "clones": config.clones, "seed": config.seed,
            **{key: grid_value(config, key) for key in grid_keys}}


def summarize(table: pd.DataFrame, group_keys: list[str]) -> str:
    """A markdown table grouped by `group_keys`: trials, failures, how many reached the target,
    and each metric's mean ± std over seeds."""
    lines = []
    header = [*group_keys, "trials", "failed", "reached target", *SUMMARY_METRICS, "wall s"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for key, group in table.groupby(group_keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ok = group[group["status"] == "TERMINATED"]
        reached = int(ok["steps_to_target"].notna().sum()) if "steps_to_target" in ok else 0
        failed = int((group["status"] == "ERROR").sum())
        cells = [str(k) for k in key] + [str(len(group)), str(failed), f"{reached}/{len(group)}"]
        cells += [_mean_std(ok[m], digits=0 if m == "steps_to_target" else 3) for m in SUMMARY_METRICS]
        cells.append(_mean_std(ok["wall_seconds"], digits=0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: pd.Series, digits: int = 3) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def plot_learning_curves(results, path: Path, by_name: dict[str, ExperimentConfig]) -> None:
    """Env return against env steps: per auction (colour) and clone count (panel), the median
    over seeds with a band from the lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[tuple[int, str], list[pd.DataFrame]] = {}
    for result in results:
        frame = result.metrics_dataframe
        if result.error is not None or frame is None or ENV_RETURN not in frame:
            continue
        config = by_name[Path(result.path).name]
        curves.setdefault((config.clones, config.auction), []).append(frame[[ITERATION, ENV_STEPS, ENV_RETURN]])
    clone_counts = sorted({clones for clones, _ in curves}) or [None]
    figure, axes = plt.subplots(1, len(clone_counts), figsize=(4.5 * len(clone_counts), 3.4), squeeze=False)
    auctions = sorted({auction for _, auction in curves})
    for axis, clones in zip(axes[0], clone_counts):
        for k, auction in enumerate(auctions):
            frames = curves.get((clones, auction))
            if not frames:
                continue
            # Trials share the batch size, so iterations line up; align on them.
            joined = pd.concat([f.set_index(ITERATION) for f in frames], axis=1, keys=range(len(frames)))
            steps = joined.xs(ENV_STEPS, axis=1, level=1).median(axis=1)
            returns = joined.xs(ENV_RETURN, axis=1, level=1)
            axis.plot(steps, returns.median(axis=1), color=f"C{k}", label=f"{auction} (n={len(frames)})")
            axis.fill_between(steps, returns.min(axis=1), returns.max(axis=1), color=f"C{k}", alpha=0.2)
        axis.set_title(f"{clones} clone(s)")
        axis.set_xlabel("env steps")
        axis.legend(fontsize="small")
    axes[0][0].set_ylabel("env return (training)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_bid_errors(table: pd.DataFrame, path: Path) -> None:
    """Final bid error per society size (clones), one marker per seed and auction, with the
    mean as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 3.4))
    done = table[(table["status"] == "TERMINATED") & table["bid_error"].notna()]
    for k, (auction, group) in enumerate(sorted(done.groupby("auction"), key=lambda item: item[0])):
        jitter = (k - 1.5) * 0.05
        axis.scatter(group["clones"] + jitter, group["bid_error"], color=f"C{k}", alpha=0.6, s=18)
        means = group.groupby("clones")["bid_error"].mean()
        axis.plot(means.index + jitter, means.values, color=f"C{k}", marker="o", label=auction)
    axis.set_xlabel("clones per primitive")
    axis.set_ylabel("final bid error |bid - Q*|")
    if not done.empty:
        axis.set_xticks(sorted(done["clones"].unique()))
        axis.legend(fontsize="small")
    else:
        axis.text(0.5, 0.5, "no bid errors (Q* unknown or outside [0, 1])", ha="center",
                  transform=axis.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(table: pd.DataFrame, output: Path) -> int:
    """Prints a finished (or interrupted) search's summary, errors and where its results are;
    returns the exit code: 130 interrupted, 1 if every trial failed, else 0."""
    print()
    print((output / "summary.md").read_text())
    failed = table[table["status"] == "ERROR"]
    for _, row in failed.iterrows():
        print(f"ERROR: {row['trial']}: {row['error']}")
    print(f"\nresults: {output / 'results.csv'}   summary: {output / 'summary.md'}   "
          f"TensorBoard: tensorboard --logdir {output}")
    unfinished = int(table["status"].isin(["UNFINISHED", "PENDING"]).sum())
    if unfinished:
        print(f"\ninterrupted: {unfinished} trial(s) unfinished; continue with "
              f"python tune_search.py --resume --output {output}")
        return 130
    return 1 if len(failed) == len(table) else 0
