"""What a run shows people: one progress line per iteration, the final results table,
`summary.json`, and the paper's figure of mean bids per state against the dashed Q* lines."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rllib_society import EXPLORATION_METRICS

#: Result keys (Tune's flattened form, as in progress.csv).
ENV_STEPS = "num_env_steps_sampled_lifetime"
ITERATION = "training_iteration"
TIME = "time_total_s"
ITERATION_ENV_STEPS = "env_runners/num_env_steps_sampled"
ENV_RETURN = "env_runners/society/env_return"
#: Env steps of finished episodes over training, options' own steps included (see callbacks).
EPISODE_ENV_STEPS = "env_runners/society/env_steps_lifetime"
GREEDY_RETURN = "society/greedy_return"
BID_ERROR = "society/bid_error"
BID_ERROR_ALL = "society/bid_error_all"
#: Held-out metrics of envs with test episodes (Mental Rotation), copied into summary.json.
TEST_METRICS = ("test_accuracy", "floor_accuracy", "clean_accuracy", "inverse_rate")

logger = logging.getLogger(__name__)


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested result dicts into Tune's ``a/b/c`` keys."""
    flat = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def _last_whole_record(line: str) -> tuple[dict, int]:
    """A JSON-lines record, and how many cut records preceded it on its line: a process killed
    mid-write leaves a partial record without its newline, and the restored run's next record
    continues the same line."""
    try:
        return json.loads(line), 0
    except json.JSONDecodeError:
        for start in (i for i, char in enumerate(line) if char == "{" and i > 0):
            try:
                return json.loads(line[start:]), 1
            except json.JSONDecodeError:
                continue
        raise


def read_progress(result_json: Path) -> pd.DataFrame:
    """One row per training iteration from Tune's ``result.json`` (JSON lines), keys flattened
    as in Tune's CSV. Iterations redone after a restore keep their last result.

    Tune's own progress.csv is not used: after a restore it appends rows whose fields no longer
    match its header (RLlib adds metric keys after the first iteration).
    """
    records, cut = [], 0
    for line in result_json.read_text().splitlines():
        if line.strip():
            record, skipped = _last_whole_record(line)
            records.append(record)
            cut += skipped
    if cut:
        logger.warning("%s: skipped %d result record(s) cut short by a killed process (their iteration was "
                       "redone after the restore).", result_json, cut)
    progress = pd.DataFrame([flatten(r) for r in records])
    return progress.drop_duplicates(ITERATION, keep="last").sort_values(ITERATION).reset_index(drop=True)


#: Primitives a progress line (the results table: a state's bids) shows at most: the ones that
#: win (bid) most.
PROGRESS_PRIMITIVES = 8


class WallClock:
    """Wall seconds since the driver started, and the env steps sampled since, for the progress
    line. Tune's ``time_total_s`` leaves out the greedy evaluation (RLlib runs
    ``on_train_result`` after timing the iteration), which can take most of an iteration
    (Taxi's 20 greedy episodes of up to 200 steps: 10x the training time)."""

    def __init__(self):
        self.started = time.time()
        self.steps_at_start: int | None = None

    def read(self, result: dict[str, Any]) -> tuple[float, int]:
        """(wall seconds so far, env steps sampled since the start), as of `result`."""
        flat = flatten(result)
        steps = int(flat.get(ENV_STEPS, 0))
        if self.steps_at_start is None:  # a resumed run starts from its checkpoint's count
            self.steps_at_start = steps - int(flat.get(ITERATION_ENV_STEPS, 0))
        return time.time() - self.started, steps - self.steps_at_start


def progress_line(result: dict[str, Any], budget: int | None = None, clock: WallClock | None = None) -> str:
    """One fixed-column line per iteration: env steps, return, greedy return, wins and bids
    (of the `PROGRESS_PRIMITIVES` that win most, in a big society), seconds so far; with the
    run's env-step `budget`, the share of it done and the time left at this pace. Seconds are
    the `clock`'s wall seconds if given, else Tune's training time."""
    flat = flatten(result)
    wins = _per_primitive(flat, "env_runners/society/win_freq/")
    bids = _per_primitive(flat, "env_runners/society/mean_bid/")
    line = (
        f"iter {int(flat.get(ITERATION, 0)):4d} | env_steps {int(flat.get(ENV_STEPS, 0)):8,d} | "
        f"return {_number(flat.get(ENV_RETURN))} | greedy {_number(flat.get(GREEDY_RETURN))}"
    )
    if BID_ERROR in flat:
        line += f" | bid_err {flat[BID_ERROR]:.3f}"
    if BID_ERROR_ALL in flat:
        line += f" (all {flat[BID_ERROR_ALL]:.3f})"
    if flat.get("society/greedy_timeouts"):
        line += f" | greedy timeouts {int(flat['society/greedy_timeouts'])}"
    if flat.get("society/eval_failed"):
        line += " | evaluation FAILED (see the log)"
    if flat.get(EPISODE_ENV_STEPS, 0) > 1.05 * flat.get(ENV_STEPS, 0):  # options: several per step
        line += f" | option env steps {int(flat[EPISODE_ENV_STEPS]):,d}"
    if "society/test_accuracy" in flat:
        line += f" | inverse {flat['society/inverse_rate']:.2f}"
    if wins:  # a society (the monolithic baseline has no auction)
        shown = sorted(wins, key=wins.get, reverse=True)[:PROGRESS_PRIMITIVES] if len(wins) > PROGRESS_PRIMITIVES else wins
        more = f" (+{len(wins) - len(shown)} more)" if len(shown) < len(wins) else ""
        line += " | wins " + " ".join(f"{k} {wins[k]:.2f}" for k in shown) + more
        line += " | bids " + " ".join(f"{k} {bids[k]:.2f}" for k in shown if k in bids)
    steps = flat.get(ENV_STEPS, 0)
    seconds, steps_timed = clock.read(result) if clock else (flat.get(TIME, 0.0), steps)
    line += f" | {seconds:6.1f} s"
    if budget and steps_timed > 0:
        left = max(budget - steps, 0) * seconds / steps_timed
        line += f" | {min(steps / budget, 1.0):4.0%} done, ETA {_duration(left)}"
    return line


def _number(value: float | None) -> str:
    """A metric in 6 columns: ``-`` when the iteration has none (no episode ended in it)."""
    return "-".rjust(6) if value is None or value != value else f"{value:6.3f}"


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _per_primitive(flat: dict[str, Any], prefix: str) -> dict[str, float]:
    values = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
    return dict(sorted(values.items(), key=lambda item: int(item[0][1:])))


def build_summary(
    config: dict[str, Any],
    last_result: dict[str, Any],
    q_values: np.ndarray | None,
    wall_seconds: float,
    checkpoint: str | None,
) -> dict[str, Any]:
    """The run's `summary.json`: what it reached and at what cost."""
    flat = flatten(last_result)
    mean_bids = last_result.get("society", {}).get("greedy_bid")
    summary: dict[str, Any] = {
        "env": config["env"],
        "algo": config.get("algo", "society"),
        "auction": config["auction"],
        "clones": config["clones"],
        "seed": config["seed"],
        "env_steps": int(flat.get(ENV_STEPS, 0)),
        # With options RLlib counts one step per option run; these count every env step.
        "env_steps_in_episodes": int(flat.get(EPISODE_ENV_STEPS, 0)),
        "iterations": int(flat.get(ITERATION, 0)),
        "wall_seconds": round(wall_seconds, 1),
        "train_return_mean": flat.get(ENV_RETURN),
        "greedy_return": flat.get(GREEDY_RETURN),
        "greedy_length": flat.get("society/greedy_length"),
        "greedy_success": flat.get("society/greedy_success"),
        "greedy_timeouts": flat.get("society/greedy_timeouts"),
        "eval_failed": flat.get("society/eval_failed"),
    }
    for key in TEST_METRICS:
        if f"society/{key}" in flat:
            summary[key] = flat[f"society/{key}"]
    if mean_bids is not None:
        summary["mean_bids"] = {s[1:]: bids for s, bids in mean_bids.items()}
    if q_values is not None:
        summary["q_star"] = {
            str(s): {f"p{k}": float(q) for k, q in enumerate(row)} for s, row in enumerate(q_values)
        }
        summary["bid_error"] = flat.get(BID_ERROR)  # None when Q* leaves the value range
        summary["bid_error_all"] = flat.get(BID_ERROR_ALL)
        summary["truthful_share"] = last_result.get("society", {}).get("truthful_share")
    summary["checkpoint"] = checkpoint
    return summary


def exploration_totals(progress: pd.DataFrame) -> dict[str, float]:
    """The run's exploration metrics (`EXPLORATION_METRICS`), summed over its iterations: each
    iteration logs the sums over the episodes that ended in it (none in some, when episodes are
    long)."""
    columns = {key: f"env_runners/society/{key}" for key in EXPLORATION_METRICS.values()}
    return {key: float(progress[column].fillna(0.0).sum()) for key, column in columns.items() if column in progress}


def evaluated_rows(progress: pd.DataFrame, metric: str = GREEDY_RETURN) -> pd.DataFrame:
    """The iterations that measured `metric`: every ``eval_interval``-th, and the last."""
    return progress[progress[metric].notna()] if metric in progress else progress.iloc[:0]


def steps_to_target(progress: pd.DataFrame, target: float | None, metric: str = GREEDY_RETURN,
                    x: str = ENV_STEPS) -> int | None:
    """Env steps (column `x`) after which `metric` (the greedy return) stayed at or above
    `target` until the end of training, over the evaluated iterations; None without a target,
    or when the last evaluation is below it."""
    progress = evaluated_rows(progress, metric)
    if target is None or progress.empty:
        return None
    reached = (progress[metric] >= target - 1e-9).to_numpy()
    if not reached[-1]:
        return None
    first = len(reached) - int(np.argmin(reached[::-1])) if not reached.all() else 0
    return int(progress[x].iloc[first])


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2) + "\n")


def results_table(summary: dict[str, Any]) -> str:
    """A short plain-text table of the summary's headline numbers."""
    society = summary.get("algo", "society") == "society"
    rows = [
        ("env", summary["env"]),
        ("algo", summary.get("algo", "society")),
        *([("auction / clones", f"{summary['auction']} / {summary['clones']}")] if society else []),
        ("env steps", f"{summary['env_steps']:,}"),
        ("wall seconds", summary["wall_seconds"]),
        ("train return (mean)", _fmt(summary["train_return_mean"])),
        ("greedy return", _fmt(summary["greedy_return"])),
        ("greedy length (env steps)", _fmt(summary["greedy_length"])),
        ("greedy success (return > 0)", _fmt(summary.get("greedy_success"))),
    ]
    if summary.get("greedy_timeouts"):
        rows.append(("greedy episodes cut (time-outs)", summary["greedy_timeouts"]))
    if summary.get("eval_failed"):
        rows.append(("last evaluation", "FAILED (see the log)"))
    if "bid_error" in summary and society:
        rows.append(("bid error vs Q*", _fmt(summary["bid_error"])))
        rows.append(("bid error, every primitive", _fmt(summary.get("bid_error_all"))))
    rows += [(f"{key.replace('_', ' ')} (held out)", _fmt(summary[key]))
             for key in TEST_METRICS if key in summary]
    if summary.get("env_steps_in_episodes", 0) > 1.05 * summary["env_steps"]:
        rows.append(("env steps with options' own", f"{summary['env_steps_in_episodes']:,}"))
    if summary.get("steps_to_target") is not None:
        rows.append(("env steps to target return", f"{summary['steps_to_target']:,}"))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if "mean_bids" in summary:
        lines.append("")
        lines.append("mean bids per state" + (" (Q* in brackets)" if "q_star" in summary else ""))
        for state, bids in summary["mean_bids"].items():
            q = summary.get("q_star", {}).get(state, {})
            shown = sorted(bids, key=bids.get, reverse=True)[:PROGRESS_PRIMITIVES] if len(bids) > PROGRESS_PRIMITIVES else bids
            cells = [f"{p} {bids[p]:.3f}" + (f" [{q[p]:.3f}]" if p in q else "") for p in shown]
            more = f"  (+{len(bids) - len(shown)} more in summary.json)" if len(shown) < len(bids) else ""
            lines.append(f"  s{state}: " + "  ".join(cells) + more)
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def bid_plot_limits(bids: np.ndarray, q_values: np.ndarray | None) -> tuple[float, float]:
    """One y scale for every state of `plot_bids`, in the bids' units (env units, whatever the
    value range): spanning the bids and Q*, with a margin of 4%."""
    shown = bids.ravel() if q_values is None else np.concatenate([bids.ravel(), q_values.ravel()])
    lo, hi = float(np.nanmin(shown)), float(np.nanmax(shown))
    pad = 0.04 * (hi - lo) or 0.02
    return lo - pad, hi + pad


#: The most states `plot_bids` draws (one panel each).
MAX_PLOTTED_STATES = 12


def plot_bids(progress: pd.DataFrame, q_values: np.ndarray | None, path: Path, title: str,
              max_states: int = MAX_PLOTTED_STATES) -> list[int]:
    """Mean bids per state and primitive over training, against dashed Q* lines (the paper's
    figure). States whose Q* is all zero (terminal or unused) are left out; of more than
    `max_states`, the plot shows those whose last bids are furthest from Q* (without Q*, the
    first), and its title says how many of how many. Returns the states drawn: none when the
    progress has no per-state bids (non-Discrete observations)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = "society/greedy_bid/s"
    columns = [c for c in progress.columns if c.startswith(prefix)]
    if not columns:
        return []
    states = sorted({int(c[len(prefix):].split("/")[0]) for c in columns})
    if q_values is not None:
        states = [s for s in states if np.any(q_values[s] != 0)] or states
    primitives = sorted({c.rsplit("/", 1)[1] for c in columns}, key=lambda p: int(p[1:]))
    progress = progress[progress[columns].notna().any(axis=1)]  # the evaluated iterations (eval_interval)
    if len(states) > max_states:
        title = f"{title} ({max_states} of {len(states)} states{'' if q_values is None else ', largest bid errors'})"
        if q_values is not None:
            last = progress.iloc[-1]
            error = {s: max(abs(last[f"{prefix}{s}/{p}"] - q_values[s, k]) for k, p in enumerate(primitives))
                     for s in states}
            states = sorted(sorted(states, key=lambda s: -error[s])[:max_states])
        else:
            states = states[:max_states]
    bids = np.stack([progress[f"{prefix}{s}/{p}"].to_numpy(dtype=float) for s in states for p in primitives])
    lo, hi = bid_plot_limits(bids, None if q_values is None else q_values[states, :len(primitives)])
    figure, axes = plt.subplots(1, len(states), figsize=(3.2 * len(states), 3), squeeze=False)
    steps = progress[ENV_STEPS]
    for axis, state in zip(axes[0], states):
        for k, primitive in enumerate(primitives):
            color = f"C{k}"
            axis.plot(steps, progress[f"{prefix}{state}/{primitive}"], color=color, label=primitive)
            if q_values is not None:
                axis.axhline(q_values[state, k], color=color, linestyle="--", linewidth=1)
        axis.set_title(f"state {state}")
        axis.set_xlabel("env steps")
        axis.set_ylim(lo, hi)
    axes[0][0].set_ylabel("mean bid (env units)")
    axes[0][-1].legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return states


def plot_episode_strip(frames: list[dict], names: list[str], path: Path, title: str = "",
                       inner_names: list[str] | None = None) -> None:
    """A PNG strip of one greedy episode (`evaluation.greedy_episode` frames): the state at each
    auction with its winner and every primitive's bid, then the final state. A society option's
    own auctions are listed under its frame: each inner winner (`inner_names`, e.g. the env's
    action names, else ``p<k>``) and its winning bid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(frames), figsize=(2.6 * len(frames), 3.0), squeeze=False)
    for step, (axis, frame) in enumerate(zip(axes[0], frames)):
        axis.imshow(frame["frame"])
        axis.set_xticks([])
        axis.set_yticks([])
        if frame["winner"] is None:
            axis.set_title(f"end: return {frame.get('return', float('nan')):.3f}\n"
                           f"{frame['env_steps']} env steps", fontsize=8)
            continue
        bids = " ".join(f"{b:.2f}" for b in frame["bids"])
        axis.set_title(f"auction {step + 1}: {names[frame['winner']]}\nbids {bids}", fontsize=7)
        label = f"after it: {frame['env_steps']} env steps"
        if frame.get("inner"):
            name = (lambda k: inner_names[k]) if inner_names else (lambda k: f"p{k}")
            inner = [f"{name(a['winner'])} {max(a['bids']):.2f}" for a in frame["inner"]]
            label += "\ninside: " + "\n".join(", ".join(inner[k:k + 4]) for k in range(0, len(inner), 4))
        axis.set_xlabel(label, fontsize=6)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
