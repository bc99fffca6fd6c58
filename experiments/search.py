"""A Tune grid of societies: which auction, how many clones, which other settings.

`search` runs the configs `experiments.grid.expand_grid` makes as concurrent `SocietyPPO` trials
of one Tune experiment, prints each trial's start and end as it happens, and hands the results
to `experiments.search_results`; `load_search` rebuilds an interrupted search for ``--resume``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from experiments.config import ExperimentConfig, make_config
from experiments.grid import expand_grid, trial_name
from experiments.reporting import BID_ERROR, ENV_RETURN, ENV_STEPS
from experiments.search_results import write_results

#: Saved in the output folder; `--resume` rebuilds the search from it.
SEARCH_FILE = "search.yaml"


def search(
    base: ExperimentConfig,
    grid: dict[str, list],
    num_samples: int,
    *,
    resume: bool = False,
    max_concurrent_trials: int | None = None,
    on_event: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Runs the grid as one Tune experiment in ``base.output_dir()`` and writes results.csv,
    summary.md and the plots there. Failed trials are reported in the table with their error
    and do not stop the others. Returns the results table.
    """
    from ray import tune

    from experiments.algo_config import SOCIETY_KEY, trial_param_space
    from experiments.training import fit, prepare_output

    variants = expand_grid(base, grid, num_samples)
    saved = {"config": base.to_dict(), "grid": grid, "num_samples": num_samples}
    output = prepare_output(base, resume, saved, SEARCH_FILE)
    grid_keys = list(grid)
    by_name = {trial_name(config, grid_keys): config for config in variants}
    name_of_seed = {config.seed: name for name, config in by_name.items()}  # seeds are unique

    def dirname(trial) -> str:
        return name_of_seed[trial.config[SOCIETY_KEY]["seed"]]

    param_space = {SOCIETY_KEY: tune.grid_search([trial_param_space(c)[SOCIETY_KEY] for c in variants])}
    started = time.time()
    results = fit(
        param_space, base, resume=resume, trial_dirname_creator=dirname,
        max_concurrent_trials=max_concurrent_trials,
        callbacks=[_event_callback(on_event, dirname, len(by_name))] if on_event else None,
    )
    return write_results(results, by_name, grid_keys, output, f"# {base.env}: {len(by_name)} trials, "
                         f"{base.stop_timesteps:,} env steps each, {time.time() - started:.0f} s")


def _event_callback(on_event: Callable[[str], None], name: Callable[[Any], str], total: int):
    """A Tune callback that reports each trial's start, end (headline numbers) and error, with
    how many of the search's `total` trials are done, running and pending (Tune creates trials
    lazily when their number of concurrent ones is capped, so its own list can be shorter)."""
    from ray.tune import Callback

    from experiments.reporting import GREEDY_RETURN, flatten

    def counts(trials, trial, now: str) -> str:
        """``[done / running / pending of all]``, `trial` counted as `now` (Tune updates its
        status after the callback)."""
        status = [now if t is trial else t.status for t in trials]
        done, running = sum(s in ("TERMINATED", "ERROR") for s in status), status.count("RUNNING")
        return f"[{done} done / {running} running / {total - done - running} pending of {total}]"

    class EventCallback(Callback):
        def __init__(self):
            self.best: tuple[float, str] | None = None  # (greedy return, trial) of finished trials

        def on_trial_start(self, iteration, trials, trial, **info):
            on_event(f"started  {name(trial)}  {counts(trials, trial, 'RUNNING')}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            flat = flatten(trial.last_result or {})
            greedy = flat.get(GREEDY_RETURN, float("nan"))
            numbers = [f"env_steps {int(flat.get(ENV_STEPS, 0)):,}",
                       f"return {flat.get(ENV_RETURN, float('nan')):.3f}", f"greedy {greedy:.3f}"]
            if BID_ERROR in flat:
                numbers.append(f"bid_err {flat[BID_ERROR]:.3f}")
            if greedy == greedy and (self.best is None or greedy > self.best[0]):
                self.best = (greedy, name(trial))
            best = f"  best so far: {self.best[1]} (greedy {self.best[0]:.3f})" if self.best else ""
            on_event(f"finished {name(trial)}: {' | '.join(numbers)}  {counts(trials, trial, 'TERMINATED')}{best}")

        def on_trial_error(self, iteration, trials, trial, **info):
            on_event(f"FAILED   {name(trial)}: see {trial.path}/error.txt  {counts(trials, trial, 'ERROR')}")

    return EventCallback()


def load_search(output: Path) -> tuple[ExperimentConfig, dict[str, list], int]:
    """The base config, grid and number of samples an interrupted search was started with."""
    saved_file = Path(output) / SEARCH_FILE
    if not saved_file.is_file():
        raise ValueError(f"--resume: {saved_file} does not exist; is --output a search folder?")
    saved = yaml.safe_load(saved_file.read_text())
    return make_config(saved["config"]), saved["grid"], int(saved["num_samples"])

