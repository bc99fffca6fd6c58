"""Training one society: start or join Ray, run RLlib's PPO as a one-trial Tune experiment (Tune's
loggers write TensorBoard, CSV and JSON; its checkpoints make the run resumable), then write the
summary and the bids figure. `run.py` and the learning tests both call `train`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from rllib_society.config import ExperimentConfig

logger = logging.getLogger(__name__)

#: Environment for every Ray process: no token auth for local work, and no chdir into trial
#: folders (relative paths in env_config keep working).
RAY_ENV_VARS = {"RAY_AUTH_MODE": "disabled", "RAY_CHDIR_TO_TRIAL_DIR": "0"}
#: Name of the trial folder inside a run's output folder.
TRIAL_DIR = "trial"
#: Checkpoints kept per trial.
CHECKPOINTS_TO_KEEP = 2


def init_ray(address: str | None = None) -> None:
    """Joins the cluster at `address`, or starts an embedded local Ray; does nothing if Ray is
    already initialised (e.g. by a test session)."""
    os.environ.update({k: os.environ.get(k, v) for k, v in RAY_ENV_VARS.items()})
    import ray

    if ray.is_initialized():
        return
    ray.init(
        address=address,
        include_dashboard=False,
        runtime_env={"env_vars": {k: os.environ[k] for k in RAY_ENV_VARS}},
        logging_level=logging.WARNING,
    )


def stop_criteria(config: ExperimentConfig) -> dict[str, int]:
    """Tune stop criteria: the env-step budget, and the optional iteration cap."""
    from rllib_society.reporting import ENV_STEPS, ITERATION

    stop = {ENV_STEPS: config.stop_timesteps}
    if config.stop_iters is not None:
        stop[ITERATION] = config.stop_iters
    return stop


def train(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Trains a society and writes everything into ``config.output_dir()``.

    Args:
        config: a validated experiment config.
        resume: continue an interrupted run in the same output folder from its last checkpoint.
        on_result: called with every iteration's result (e.g. to print progress).

    Returns:
        The summary also written to ``summary.json``.

    Raises:
        RuntimeError: when the trial fails (its error is included).
    """
    from ray import tune
    from ray.rllib.algorithms.ppo import PPO

    from rllib_society.algo_config import build_algo_config
    from rllib_society.evaluation import q_star
    from rllib_society.reporting import build_summary, plot_bids, read_progress, write_summary

    output = config.output_dir()
    if output.exists() and any(output.iterdir()) and not resume:
        raise FileExistsError(f"output folder {output} is not empty; pass --resume to continue it.")
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    init_ray(config.address)
    algo_config = build_algo_config(config)
    run_config = tune.RunConfig(
        name=output.name,
        storage_path=str(output.parent),
        stop=stop_criteria(config),
        checkpoint_config=tune.CheckpointConfig(
            checkpoint_frequency=config.checkpoint_frequency,
            checkpoint_at_end=config.checkpoint_at_end,
            num_to_keep=CHECKPOINTS_TO_KEEP,
        ),
        callbacks=[_result_callback(on_result)] if on_result else None,
        verbose=0,
    )
    started = time.time()
    if resume and tune.Tuner.can_restore(str(output)):
        tuner = tune.Tuner.restore(str(output), trainable=PPO, param_space=algo_config)
    else:
        tuner = tune.Tuner(
            PPO,
            param_space=algo_config,
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda trial: TRIAL_DIR),
            run_config=run_config,
        )
    result = tuner.fit()[0]
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error

    society_config = config.society_config()
    q_values = q_star(society_config)
    summary = build_summary(
        config.to_dict(), result.metrics, q_values, time.time() - started,
        result.checkpoint.path if result.checkpoint else None,
    )
    summary["output"] = str(output)
    write_summary(summary, output / "summary.json")
    progress = read_progress(Path(result.path) / "result.json")
    progress.to_csv(output / "progress.csv", index=False)
    title = f"{config.env}, {config.auction}, {config.clones} clone(s)"
    if plot_bids(progress, q_values, output / "bids.png", title):
        summary["bids_plot"] = str(output / "bids.png")
    return summary


def _result_callback(on_result: Callable[[dict[str, Any]], None]):
    """A Tune callback that hands every trial result to `on_result`."""
    from ray.tune import Callback

    class ResultCallback(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            on_result(result)

    return ResultCallback()


