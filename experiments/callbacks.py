"""RLlib callbacks that report what the society (or the monolithic baseline) does, through
RLlib's MetricsLogger (so the numbers reach Tune's TensorBoard and CSV loggers): env return, win
frequency, mean bid and mean utility per primitive, and, after each iteration, a greedy
evaluation: the bid error vs Q* on tabular envs, the held-out test accuracy on envs with test
episodes (Mental Rotation). Both report under the same ``society/...`` keys."""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.annotations import override

from experiments.evaluation import bid_range_q_star, evaluate, evaluation_env, evaluate_policy
from rllib_society import AUCTION_INFO, EPISODE_INFO, OPTION_STEPS, BaseEnv, primitive_name
from experiments.transform_evaluation import (
    evaluate_on_test,
    policy_chooser,
    society_chooser,
    test_env,
)

#: Top-level key of the society's metrics in results (``society/...`` in TensorBoard).
SOCIETY = "society"
#: Metric of env steps (not auction or option steps) in finished episodes, over training.
ENV_STEPS_LIFETIME = "env_steps_lifetime"
#: Episodes over which env-runner metrics are averaged (RLlib's default smoothing window).
SMOOTHING_EPISODES = 100
#: The episode summary's entries logged per episode (under these names) and per primitive.
EPISODE_METRICS = {"env_return": "env_return", "env_steps": "env_steps_per_episode"}
PER_PRIMITIVE = ("win_freq", "mean_bid", "utility")


class SocietyMetricsCallback(RLlibCallback):
    """Episode metrics on the env runners; greedy evaluation on the algorithm.

    Per-primitive episode metrics are the mean over the runner's last `SMOOTHING_EPISODES`
    episodes, kept here and logged once per `sample()` (3 x N values per episode through the
    MetricsLogger cost a tenth of a 32-primitive iteration)."""

    def __init__(self):
        super().__init__()
        self._per_primitive = deque(maxlen=SMOOTHING_EPISODES)  # (3, N) per finished episode
        # Built once per society config, not every iteration.
        self._eval_config = None
        self._eval_env = None
        self._test_env = None
        self._q_star = None

    @override(RLlibCallback)
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        summary = _episode_summary(episode)
        for key, name in EPISODE_METRICS.items():
            metrics_logger.log_value((SOCIETY, name), float(summary[key]), reduce="mean", window=SMOOTHING_EPISODES)
        _log_env_steps(metrics_logger, summary["env_steps"])
        self._per_primitive.append(np.array([summary[key] for key in PER_PRIMITIVE], dtype=float))

    @override(RLlibCallback)
    def on_sample_end(self, *, metrics_logger=None, **kwargs) -> None:
        if not self._per_primitive:
            return
        with warnings.catch_warnings():  # a primitive whose clones always sat out bids NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(np.stack(self._per_primitive), axis=0)
        for key, values in zip(PER_PRIMITIVE, means):
            for k, value in enumerate(values):
                if value == value:
                    metrics_logger.log_value((SOCIETY, key, primitive_name(k)), float(value),
                                             reduce="mean", window=1)

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, result: dict, **kwargs) -> None:
        society_config = dict(algorithm.config.env_config)
        if self._eval_config != society_config:
            self._eval_config = society_config
            self._test_env = test_env(society_config["env"], society_config["env_config"])
            self._eval_env = None if self._test_env else evaluation_env(society_config)
            self._q_star = bid_range_q_star(society_config)
        modules = society_modules(algorithm)
        if self._test_env is not None:
            result[SOCIETY] = _test_metrics(self._test_env, society_chooser(modules), society_config)
            return
        evaluation = evaluate(
            modules, self._eval_env, episodes=society_config["eval_episodes"],
            seed=algorithm.config.seed, q_values=self._q_star,
        )
        mean_bids = evaluation.pop("mean_bids", None)
        if mean_bids is not None:
            evaluation["greedy_bid"] = {f"s{s}": bids for s, bids in mean_bids.items()}
        result[SOCIETY] = evaluation


class MonolithicMetricsCallback(RLlibCallback):
    """The baseline's env return per episode, and after each iteration its greedy (most likely
    action) evaluation, under the society's metric keys so runs compare column by column."""

    def __init__(self):
        super().__init__()
        self._eval_config = None
        self._eval_env = None
        self._test_env = None

    @override(RLlibCallback)
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        # An option is one RLlib step but several env steps (its info says how many).
        env_steps = sum(info.get(OPTION_STEPS, 1) for info in episode.get_infos()[1:])
        for key, value in (("env_return", episode.get_return()), ("env_steps_per_episode", env_steps)):
            metrics_logger.log_value((SOCIETY, key), float(value), reduce="mean", window=SMOOTHING_EPISODES)
        _log_env_steps(metrics_logger, env_steps)

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, result: dict, **kwargs) -> None:
        env_config = dict(algorithm.config.env_config)
        if self._eval_config != env_config:
            self._eval_config = env_config
            self._test_env = test_env(env_config["env"], env_config["env_config"])
            self._eval_env = None if self._test_env else BaseEnv(env_config)
        module = algorithm.get_module()
        if self._test_env is not None:
            result[SOCIETY] = _test_metrics(self._test_env, policy_chooser(module), env_config)
        else:
            result[SOCIETY] = evaluate_policy(
                module, self._eval_env, env_config["eval_episodes"], seed=algorithm.config.seed)


def _episode_summary(episode) -> dict:
    """The episode summary in the auction record of an episode's last step: of the fast path's
    `AuctionChunk`, or in a stock multi-agent episode of any agent that got the final step."""
    agent_episodes = getattr(episode, "agent_episodes", None)
    for single in (agent_episodes.values() if agent_episodes is not None else [episode]):
        record = single.get_infos(-1).get(AUCTION_INFO, {})
        if EPISODE_INFO in record:
            return record[EPISODE_INFO]
    raise ValueError("the episode's last step holds no auction summary.")


def society_modules(algorithm) -> dict:
    """The society's modules ``{"p0": module, ...}``, in primitive order (`greedy_bids`)."""
    return {primitive_name(k): algorithm.get_module(primitive_name(k)) for k in range(len(algorithm.config.policies))}


def _log_env_steps(metrics_logger, env_steps: int) -> None:
    """Env steps of finished episodes, summed over training: the x-axis for societies of options,
    whose RLlib step counters count auction steps (one per option run)."""
    metrics_logger.log_value((SOCIETY, ENV_STEPS_LIFETIME), float(env_steps), reduce="lifetime_sum")


def _test_metrics(env, choose, config: dict) -> dict:
    """Held-out accuracy of `eval_episodes` test episodes; the greedy return is the accuracy."""
    metrics, _ = evaluate_on_test(env, choose, count=config["eval_episodes"])
    return {**metrics, "greedy_return": metrics["test_accuracy"], "greedy_length": float(env.steps),
            "greedy_success": metrics["test_accuracy"]}

