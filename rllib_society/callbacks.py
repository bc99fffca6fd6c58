"""RLlib callback that reports what the society does, through RLlib's MetricsLogger (so the
numbers reach Tune's TensorBoard and CSV loggers): env return, win frequency, mean bid and mean
utility per primitive, and, after each iteration, a greedy evaluation with the bid error vs Q*."""

from __future__ import annotations

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.annotations import override

from rllib_society.evaluation import bid_range_q_star, evaluate, evaluation_env
from rllib_society.society_env import AUCTION_INFO, EPISODE_INFO

#: Top-level key of the society's metrics in results (``society/...`` in TensorBoard).
SOCIETY = "society"
#: Episodes over which env-runner metrics are averaged (RLlib's default smoothing window).
SMOOTHING_EPISODES = 100


class SocietyMetricsCallback(RLlibCallback):
    """Episode metrics on the env runners; greedy evaluation on the algorithm."""

    def __init__(self):
        super().__init__()
        # Built once per society config, not every iteration.
        self._eval_config = None
        self._eval_env = None
        self._q_star = None

    @override(RLlibCallback)
    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        agent_episode = next(iter(episode.agent_episodes.values()))
        summary = agent_episode.get_infos(-1)[AUCTION_INFO][EPISODE_INFO]
        log = lambda key, value: metrics_logger.log_value(  # noqa: E731
            (SOCIETY, *key), float(value), reduce="mean", window=SMOOTHING_EPISODES
        )
        log(("env_return",), summary["env_return"])
        log(("env_steps_per_episode",), summary["env_steps"])
        for k, (wins, bid, utility) in enumerate(
            zip(summary["win_freq"], summary["mean_bid"], summary["utility"])
        ):
            log(("win_freq", f"p{k}"), wins)
            log(("utility", f"p{k}"), utility)
            if bid == bid:  # NaN when all of the primitive's clones sat out
                log(("mean_bid", f"p{k}"), bid)

    @override(RLlibCallback)
    def on_train_result(self, *, algorithm, result: dict, **kwargs) -> None:
        society_config = dict(algorithm.config.env_config)
        if self._eval_config != society_config:
            self._eval_config = society_config
            self._eval_env = evaluation_env(society_config)
            self._q_star = bid_range_q_star(society_config)
        modules = {m: algorithm.get_module(m) for m in sorted(algorithm.config.policies, key=_index)}
        evaluation = evaluate(
            modules, self._eval_env, episodes=society_config["eval_episodes"],
            seed=algorithm.config.seed, q_values=self._q_star,
        )
        mean_bids = evaluation.pop("mean_bids", None)
        if mean_bids is not None:
            evaluation["greedy_bid"] = {f"s{s}": bids for s, bids in mean_bids.items()}
        result[SOCIETY] = evaluation


def _index(module_id: str) -> int:
    return int(module_id[1:])
