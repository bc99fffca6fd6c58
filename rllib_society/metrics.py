"""A society's episode metrics through RLlib's MetricsLogger, under ``society/...`` of each
result's ``env_runners`` (and so in Tune's TensorBoard and CSV): what RLlib's own
``episode_return_mean`` cannot say, since a society's agents are rewarded with utilities, not with
the env's reward."""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.annotations import override

from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, primitive_name

#: Top-level key of the society's metrics in results (``society/...`` in TensorBoard).
SOCIETY = "society"
#: Metric of env steps (not auction or option steps) in finished episodes, over training.
ENV_STEPS_LIFETIME = "env_steps_lifetime"
#: Episodes over which env-runner metrics are averaged (RLlib's default smoothing window).
SMOOTHING_EPISODES = 100
#: The episode summary's entries logged per episode (under these names) and per primitive.
EPISODE_METRICS = {"env_return": "env_return", "env_steps": "env_steps_per_episode"}
PER_PRIMITIVE = ("win_freq", "mean_bid", "utility")
#: Exploration offers (`rllib_society.exploration`), summed per iteration over finished episodes:
#: exploration auctions, offers bought, the market's balance (bid units) and the count bonus it paid
#: (env units).
EXPLORATION_METRICS = {"offers": "exploration_auctions", "offers_bought": "offers_bought",
                       "market_balance": "market_balance", "bonus_paid": "bonus_paid"}


class SocietyMetrics(RLlibCallback):
    """Logs, per finished episode, the env's return and env steps (options count their own), and
    per primitive ``win_freq``, ``mean_bid`` and ``utility`` (per auction step), each the mean
    over the last `SMOOTHING_EPISODES` episodes; plus ``env_steps_lifetime`` and, summed per
    iteration, the exploration offers (`EXPLORATION_METRICS`). `SocietyPPOConfig`
    sets it unless a config names its own callbacks (subclass it to keep these metrics).

    Per-primitive metrics are kept here and logged once per `sample()` (3 x N values per
    episode through the MetricsLogger cost a tenth of a 32-primitive iteration)."""

    def __init__(self):
        super().__init__()
        self._per_primitive = deque(maxlen=SMOOTHING_EPISODES)  # (3, N) per finished episode

    @override(RLlibCallback)
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        summary = episode_summary(episode)
        for key, name in EPISODE_METRICS.items():
            metrics_logger.log_value((SOCIETY, name), float(summary[key]), reduce="mean", window=SMOOTHING_EPISODES)
        log_env_steps(metrics_logger, summary["env_steps"])
        for key, name in EXPLORATION_METRICS.items():
            metrics_logger.log_value((SOCIETY, name), float(summary[key]), reduce="sum")
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


def episode_summary(episode) -> dict:
    """The episode summary in the auction record of an episode's last step: of the fast path's
    `AuctionChunk`, or in a stock multi-agent episode of any agent that got the final step."""
    agent_episodes = getattr(episode, "agent_episodes", None)
    for single in (agent_episodes.values() if agent_episodes is not None else [episode]):
        record = single.get_infos(-1).get(AUCTION_INFO, {})
        if EPISODE_INFO in record:
            return record[EPISODE_INFO]
    raise ValueError("the episode's last step holds no auction summary.")


def log_env_steps(metrics_logger, env_steps: int) -> None:
    """Env steps of finished episodes, summed over training: the x-axis for societies of options,
    whose RLlib step counters count auction steps (one per option run)."""
    metrics_logger.log_value((SOCIETY, ENV_STEPS_LIFETIME), float(env_steps), reduce="lifetime_sum")
