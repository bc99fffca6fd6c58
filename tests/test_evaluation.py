"""Greedy evaluation never ends training: episodes are cut at a cap, errors are reported."""

import logging

import pytest

from experiments.callbacks import guarded_evaluation
from experiments.evaluation import DEFAULT_EVAL_MAX_STEPS, eval_max_steps


@pytest.mark.parametrize(("env", "cap", "expected"), [
    ("Chain-v0", None, 20),                          # the env's time limit
    ("tests.endless_env:Endless-v0", None, DEFAULT_EVAL_MAX_STEPS),  # no time limit
    ("Chain-v0", 7, 7),                              # the config's key wins
])
def test_the_greedy_cap_comes_from_the_config_else_the_time_limit_else_1000(env, cap, expected):
    import envs  # noqa: F401 (registers Chain-v0)

    assert eval_max_steps({"env": env, "env_config": {}, "eval_max_steps": cap}) == expected


def test_an_evaluation_error_is_logged_and_reported_not_raised(caplog):
    def broken():
        raise KeyError("no such state")

    with caplog.at_level(logging.WARNING):
        metrics = guarded_evaluation(broken, iteration=3, max_env_steps=10)
    assert metrics == {"eval_failed": 1}
    assert "iteration 3: greedy evaluation failed, training goes on: KeyError" in caplog.text


def test_time_outs_are_counted_and_warned(caplog):
    with caplog.at_level(logging.WARNING):
        metrics = guarded_evaluation(lambda: {"greedy_return": 0.5, "greedy_timeouts": 2}, 1, 10)
    assert metrics == {"greedy_return": 0.5, "greedy_timeouts": 2, "eval_failed": 0}
    assert "2 greedy episode(s) did not end within 10 env steps" in caplog.text


def test_the_baseline_counts_every_chunk_of_an_episode_that_spanned_sample_calls():
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

    from experiments.callbacks import MonolithicMetricsCallback

    class Chunk:  # an RLlib episode chunk: its own steps' rewards and infos (the first: reset/lookback)
        def __init__(self, rewards, option_steps, option_returns=None):
            self.rewards, self.infos = rewards, [{}] + [{"option_steps": n} for n in option_steps]
            for info, env_return in zip(self.infos[1:], option_returns or []):
                if env_return is not None:
                    info["option_return"] = env_return

        def get_rewards(self):
            return self.rewards

        def get_infos(self):
            return self.infos

    # The last step is an option of 3 env steps: its reward 0.5 is discounted, the env paid 0.7.
    logger = MetricsLogger()
    MonolithicMetricsCallback().on_episode_end(
        episode=Chunk([-1.0, 0.5], [1, 3], [None, 0.7]), prev_episode_chunks=[Chunk([-1.0] * 3, [1, 1, 2])],
        metrics_logger=logger, env_index=0)
    assert logger.peek(("society", "env_return")) == pytest.approx(-3.3)
    assert logger.peek(("society", "env_steps_per_episode")) == 8



@pytest.mark.parametrize(("env", "env_config", "optimal"), [
    ("FrozenLake-v1", {"is_slippery": False}, 1.0),  # the goal in 6 steps, every seed
    ("CliffWalking-v1", {}, -13.0),                  # along the cliff edge
])
def test_the_policy_greedy_in_q_star_gets_the_optimal_return_on_every_seed(env, env_config, optimal):
    from experiments.evaluate_run import optimal_returns

    config = {"env": env, "env_config": env_config, "gamma": 0.99, "truncation": "end"}
    assert optimal_returns(config, episodes=5, seed=0, max_env_steps=100) == [optimal] * 5

