"""RLlib callbacks of the experiments: the society's episode metrics (the extension's
`SocietyMetrics`: env return, win frequency, mean bid and utility per primitive) and, after every
``eval_interval``-th iteration, a greedy evaluation: the bid error vs Q* on tabular envs, the
held-out test accuracy on envs with test episodes (Mental Rotation). The monolithic baseline
reports under the same ``society/...`` keys, so runs compare column by column."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.annotations import override
from ray.tune.result import TRAINING_ITERATION

from experiments.evaluation import coverable_q_star, eval_max_steps, evaluate, evaluate_policy, evaluation_env
from experiments.transform_evaluation import evaluate_on_test, policy_chooser, society_chooser, test_env
from rllib_society import (
    OPTION_RETURN, OPTION_STEPS, SMOOTHING_EPISODES, SOCIETY, BaseEnv, SocietyMetrics, load_modules, load_policy, log_env_steps,
    primitive_name,
)


logger = logging.getLogger(__name__)


def guarded_evaluation(evaluate_once: Callable[[], dict], iteration: int, max_env_steps: int) -> dict:
    """Runs one greedy evaluation so that it never ends training: time-outs get a warning line,
    any error is logged with its cause and reported as ``eval_failed: 1`` for the iteration."""
    try:
        metrics = evaluate_once()
    except Exception as error:  # noqa: BLE001 (an evaluation must not kill a training run)
        logger.warning("iteration %d: greedy evaluation failed, training goes on: %s: %s",
                       iteration, type(error).__name__, error, exc_info=True)
        return {"eval_failed": 1}
    if metrics.get("greedy_timeouts"):
        logger.warning("iteration %d: %d greedy episode(s) did not end within %d env steps; "
                       "their return is that of the cut episode (eval_max_steps).",
                       iteration, metrics["greedy_timeouts"], max_env_steps)
    return {**metrics, "eval_failed": 0}


class SocietyMetricsCallback(SocietyMetrics):
    """The society's episode metrics (`SocietyMetrics`), and after every ``eval_interval``-th
    iteration a greedy evaluation of the paper's tasks on the algorithm."""

    def __init__(self):
        super().__init__()
        # Built once per society config, not every iteration.
        self._eval_config = None
        self._eval_env = None
        self._test_env = None
        self._q_star = None
        self._max_steps = None

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, result: dict, **kwargs) -> None:
        society_config = dict(algorithm.config.env_config)
        if evaluation_due(society_config, result[TRAINING_ITERATION]):
            result[SOCIETY] = self.evaluate(society_config, society_modules(algorithm), algorithm.config.seed,
                                            result[TRAINING_ITERATION])

    def evaluate(self, society_config: dict, modules: dict, seed: int, iteration: int) -> dict:
        """One greedy evaluation of the society's `modules` (`guarded_evaluation`): after an
        iteration, or of a run's final checkpoint (`final_evaluation`)."""
        if self._eval_config != society_config:
            self._eval_config = society_config
            self._test_env = test_env(society_config["env"], society_config["env_config"])
            self._eval_env = None if self._test_env else evaluation_env(society_config)
            self._q_star = coverable_q_star(society_config)
            self._max_steps = eval_max_steps(society_config)

        def evaluate_once() -> dict:
            if self._test_env is not None:
                return _test_metrics(self._test_env, society_chooser(modules), society_config)
            evaluation = evaluate(
                modules, self._eval_env, episodes=society_config["eval_episodes"],
                seed=seed, q_values=self._q_star, max_env_steps=self._max_steps,
            )
            mean_bids = evaluation.pop("mean_bids", None)
            if mean_bids is not None:
                evaluation["greedy_bid"] = {f"s{s}": bids for s, bids in mean_bids.items()}
            return evaluation

        return guarded_evaluation(evaluate_once, iteration, self._max_steps)


class MonolithicMetricsCallback(RLlibCallback):
    """The baseline's env return per episode, and after every ``eval_interval``-th iteration its
    greedy (most likely action) evaluation, under the society's metric keys so runs compare column by column."""

    def __init__(self):
        super().__init__()
        self._eval_config = None
        self._eval_env = None
        self._test_env = None
        self._max_steps = None

    @override(RLlibCallback)
    def on_episode_end(self, *, episode, prev_episode_chunks=None, metrics_logger=None, **kwargs) -> None:
        # `episode` is only the last chunk of an episode that spanned sample() calls.
        chunks = [*(prev_episode_chunks or []), episode]
        # An option is one RLlib step but several env steps; its info says how many, and what the
        # env paid over them (its reward is discounted).
        steps = [(info, reward) for chunk in chunks for info, reward in zip(chunk.get_infos()[1:], chunk.get_rewards())]
        env_steps = sum(info.get(OPTION_STEPS, 1) for info, _ in steps)
        env_return = sum(info.get(OPTION_RETURN, reward) for info, reward in steps)
        for key, value in (("env_return", env_return), ("env_steps_per_episode", env_steps)):
            metrics_logger.log_value((SOCIETY, key), float(value), reduce="mean", window=SMOOTHING_EPISODES)
        log_env_steps(metrics_logger, env_steps)

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, result: dict, **kwargs) -> None:
        env_config = dict(algorithm.config.env_config)
        if evaluation_due(env_config, result[TRAINING_ITERATION]):
            result[SOCIETY] = self.evaluate(env_config, algorithm.get_module(), algorithm.config.seed,
                                            result[TRAINING_ITERATION])

    def evaluate(self, env_config: dict, module, seed: int, iteration: int) -> dict:
        """One greedy evaluation of the baseline's `module` (`guarded_evaluation`)."""
        if self._eval_config != env_config:
            self._eval_config = env_config
            self._test_env = test_env(env_config["env"], env_config["env_config"])
            self._eval_env = None if self._test_env else BaseEnv(env_config)
            self._max_steps = eval_max_steps(env_config)

        def evaluate_once() -> dict:
            if self._test_env is not None:
                return _test_metrics(self._test_env, policy_chooser(module), env_config)
            return evaluate_policy(module, self._eval_env, env_config["eval_episodes"],
                                   seed=seed, max_env_steps=self._max_steps)

        return guarded_evaluation(evaluate_once, iteration, self._max_steps)


def evaluation_due(env_config: dict, iteration: int) -> bool:
    """Whether the greedy evaluation runs after `iteration` (counted from 1): every
    ``eval_interval``-th. A run whose last iteration was not evaluated gets its final
    evaluation from its last checkpoint (`final_evaluation`)."""
    return iteration % env_config.get("eval_interval", 1) == 0


def final_evaluation(algo: str, env_config: dict, checkpoint: str, seed: int, iteration: int) -> dict:
    """The greedy evaluation of a run's final `checkpoint`, as the callbacks evaluate an
    iteration: for a run that stopped between two evaluations (``eval_interval``)."""
    if algo == "monolithic":
        return MonolithicMetricsCallback().evaluate(env_config, load_policy(checkpoint), seed, iteration)
    return SocietyMetricsCallback().evaluate(env_config, load_modules(checkpoint), seed, iteration)


def society_modules(algorithm) -> dict:
    """The society's modules ``{"p0": module, ...}``, in primitive order (`greedy_bids`)."""
    return {primitive_name(k): algorithm.get_module(primitive_name(k)) for k in range(len(algorithm.config.policies))}


def _test_metrics(env, choose, config: dict) -> dict:
    """Held-out accuracy of `eval_episodes` test episodes; the greedy return is the accuracy."""
    metrics, _ = evaluate_on_test(env, choose, count=config["eval_episodes"])
    return {**metrics, "greedy_return": metrics["test_accuracy"], "greedy_length": float(env.steps),
            "greedy_success": metrics["test_accuracy"]}

