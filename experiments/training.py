"""Training societies with Ray Tune: run `SocietyPPO` trials on the Ray that `ray_setup` starts or
joins (Tune's loggers write TensorBoard, CSV and JSON; its checkpoints make runs resumable), then
write each trial's summary and plots (`episode_plots`). `run.py` trains one society (`train`);
`tune_search.py` runs a grid of them (`experiments.search`); both go through `fit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from experiments.config import ExperimentConfig
from experiments.episode_plots import (
    EPISODE_PLOT, TEST_EPISODES_PLOT, plot_checkpoint_episode, plot_checkpoint_test_episodes,
)
from experiments.ray_setup import init_ray

if TYPE_CHECKING:
    import pandas as pd

#: Name of the trial folder inside a run's output folder.
TRIAL_DIR = "trial"


def stop_criteria(config: ExperimentConfig) -> dict[str, float]:
    """Tune stop criteria (any one met stops a trial): the env-step budget, and the optional
    iteration cap and return target."""
    from experiments.reporting import ENV_RETURN, ENV_STEPS, ITERATION

    stop: dict[str, float] = {ENV_STEPS: config.stop_timesteps}
    if config.stop_iters is not None:
        stop[ITERATION] = config.stop_iters
    if config.stop_reward is not None:
        stop[ENV_RETURN] = config.stop_reward
    return stop


def fit(
    param_space: dict[str, Any],
    config: ExperimentConfig,
    *,
    resume: bool = False,
    callbacks: list | None = None,
    trial_dirname_creator: Callable | None = None,
    max_concurrent_trials: int | None = None,
):
    """Runs (or, with `resume`, continues) a Tune experiment of `SocietyPPO` trials in
    ``config.experiment_dir()``, with `config`'s budget and checkpoints. Returns Tune's ResultGrid.

    A resumed experiment keeps its finished trials and continues unfinished ones from their last
    checkpoint; failed trials stay failed (their error is in the ResultGrid).
    """
    from ray import tune

    from experiments.algo_config import SocietyPPO

    experiment = config.experiment_dir()
    init_ray(config.address)
    if resume and tune.Tuner.can_restore(str(experiment)):
        tuner = tune.Tuner.restore(str(experiment), trainable=SocietyPPO, param_space=param_space)
    else:
        tuner = tune.Tuner(
            SocietyPPO,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                trial_name_creator=trial_dirname_creator,
                trial_dirname_creator=trial_dirname_creator,
                max_concurrent_trials=max_concurrent_trials,
            ),
            run_config=tune.RunConfig(
                name=experiment.name,
                storage_path=str(experiment.parent),
                stop=stop_criteria(config),
                checkpoint_config=tune.CheckpointConfig(
                    checkpoint_frequency=config.checkpoint_frequency,
                    checkpoint_at_end=config.checkpoint_at_end,
                    num_to_keep=config.checkpoints_to_keep,
                ),
                callbacks=callbacks,
                verbose=0,
            ),
        )
    return tuner.fit()


def prepare_output(config: ExperimentConfig, resume: bool, saved: dict[str, Any], name: str) -> Path:
    """Creates the output folder (refusing to overwrite a non-empty one unless resuming) and
    saves `saved` as YAML file `name` in it, so `--resume` can rebuild the run."""
    output = config.output_dir()
    if output.exists() and any(output.iterdir()) and not resume:
        raise FileExistsError(f"output folder {output} is not empty; pass --resume to continue it.")
    output.mkdir(parents=True, exist_ok=True)
    (output / name).write_text(yaml.safe_dump(saved, sort_keys=False))
    return output


def train(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Trains one society and writes everything into ``config.output_dir()``.

    Args:
        config: a validated experiment config.
        resume: continue an interrupted run in the same output folder from its last checkpoint.
        on_result: called with every iteration's result (e.g. to print progress).

    Returns:
        The summary also written to ``summary.json``.

    Raises:
        RuntimeError: when the trial fails (its error is included).
    """
    from experiments.algo_config import trial_param_space

    output = prepare_output(config, resume, config.to_dict(), "config.yaml")
    started = time.time()
    results = fit(
        trial_param_space(config), config, resume=resume,
        callbacks=[_result_callback(on_result)] if on_result else None,
        trial_dirname_creator=lambda trial: TRIAL_DIR,
    )
    result = results[0]
    if result.error:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    summary, _ = write_trial_outputs(config, result, output, time.time() - started)
    summary["output"] = str(output)
    return summary


def write_trial_outputs(
    config: ExperimentConfig, result, folder: Path, wall_seconds: float
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Writes a finished trial's ``summary.json``, ``progress.csv``, ``bids.png`` (tabular envs)
    and ``test_episodes.png`` (envs with test episodes) into `folder`; returns the summary and the progress table (one row per iteration)."""
    from experiments.evaluation import q_star
    from experiments.callbacks import evaluation_due
    from experiments.reporting import (
        ENV_RETURN, ENV_STEPS, EPISODE_ENV_STEPS, ITERATION, build_summary, exploration_totals, plot_bids, read_progress,
        steps_to_target, write_summary,
    )

    q_values = q_star(config.society_config())
    progress = read_progress(Path(result.path) / "result.json")
    metrics = result.metrics
    if not evaluation_due(config.society_config(), int(metrics[ITERATION])):  # stopped between evaluations
        metrics, progress = _evaluate_final_checkpoint(config, result, progress)
    summary = build_summary(
        config.to_dict(), metrics, q_values, wall_seconds,
        result.checkpoint.path if result.checkpoint else None,
    )
    # Over options RLlib counts auctions: count the env's own steps.
    x = EPISODE_ENV_STEPS if config.options and EPISODE_ENV_STEPS in progress else ENV_STEPS
    summary["steps_to_target"] = steps_to_target(progress, config.target_return, x=x)
    summary.update(exploration_totals(progress))
    if ENV_RETURN in progress and progress[ENV_RETURN].notna().any():  # the last iteration may end no episode
        summary["train_return_mean"] = float(progress[ENV_RETURN].dropna().iloc[-1])
    progress.to_csv(folder / "progress.csv", index=False)
    title = f"{config.env}, {config.auction}, {config.clones} clone(s)"
    plotted = plot_bids(progress, q_values, folder / "bids.png", title)
    if plotted:
        summary["bids_plot"] = str(folder / "bids.png")
        summary["bids_plot_states"] = plotted
    if result.checkpoint and plot_checkpoint_test_episodes(config, result.checkpoint.path, folder / TEST_EPISODES_PLOT):
        summary["test_episodes_plot"] = str(folder / TEST_EPISODES_PLOT)
    if result.checkpoint and config.options and config.algo == "society":
        plot_checkpoint_episode(config, result.checkpoint.path, folder / EPISODE_PLOT)
        summary["episode_plot"] = str(folder / EPISODE_PLOT)
    write_summary(summary, folder / "summary.json")
    return summary, progress


def _evaluate_final_checkpoint(config: ExperimentConfig, result, progress: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """The trial's last metrics and progress with the greedy evaluation of its final checkpoint
    (`final_evaluation`) in the last row: for a run that stopped between two evaluations
    (``eval_interval``)."""
    from experiments.algo_config import build_algo_config
    from experiments.callbacks import final_evaluation
    from experiments.reporting import ITERATION, flatten
    from rllib_society import SOCIETY

    if not result.checkpoint:
        return result.metrics, progress
    env_config = dict(build_algo_config(config).env_config)  # value_range resolved, as in the trial
    iteration = int(result.metrics[ITERATION])
    evaluation = final_evaluation(config.algo, env_config, result.checkpoint.path, config.seed, iteration)
    progress = progress.copy()
    for column, value in flatten({SOCIETY: evaluation}).items():
        progress.loc[progress.index[-1], column] = value
    return {**result.metrics, SOCIETY: evaluation}, progress


def _result_callback(on_result: Callable[[dict[str, Any]], None]):
    """A Tune callback that hands every trial result to `on_result`."""
    from ray.tune import Callback

    class ResultCallback(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            on_result(result)

    return ResultCallback()
