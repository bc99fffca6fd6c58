"""The monolithic baseline over options discounts as the society does: an option of L env steps
by gamma ** L (semi-MDP), in PPO's GAE."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from rllib_society.semi_mdp import semi_mdp_value_targets


def test_gae_with_per_step_discounts_is_the_discounted_sum_of_td_errors():
    rng = np.random.default_rng(0)
    values, rewards = rng.normal(size=6), rng.normal(size=6)
    discounts = np.array([0.9, 0.9 ** 4, 0.9 ** 2, 0.9, 0.9 ** 7, 0.9])
    terminateds = np.array([0, 0, 0, 0, 1, 0.0])  # the episode ends at step 4; step 5 is RLlib's extra
    truncateds = np.zeros(6)
    lam = 0.95
    # Oracle: A_t = sum_k (prod_{j<k} d_{t+j} lambda) delta_{t+k}, summed up to the episode's end.
    deltas = [rewards[t] + (0 if terminateds[t] else discounts[t] * values[t + 1]) - values[t] for t in range(5)]
    for t in range(5):
        weight, advantage = 1.0, 0.0
        for k in range(t, 5):
            advantage += weight * deltas[k]
            weight *= discounts[k] * lam
        assert semi_mdp_value_targets(values, rewards, discounts, terminateds, truncateds, lam)[t] == \
            pytest.approx(advantage + values[t], abs=1e-5)


def test_with_one_discount_it_is_rllibs_gae():
    rng = np.random.default_rng(1)
    values, rewards = rng.normal(size=8), rng.normal(size=8)
    terminateds, truncateds = np.zeros(8), np.array([0, 0, 0, 1, 0, 0, 0, 0.0])
    ours = semi_mdp_value_targets(values, rewards, np.full(8, 0.97), terminateds, truncateds, 0.9)
    assert np.allclose(ours, compute_value_targets(values, rewards, terminateds, truncateds, 0.97, 0.9), atol=1e-6)


class Scripted:
    def __init__(self, actions):
        self.actions, self.t = list(actions), 0

    def act(self, observation):
        self.t += 1
        return self.actions[(self.t - 1) % len(self.actions)]


def test_the_baselines_learner_reads_each_options_discount_from_its_episode(ray_session):
    from experiments.algo_config import monolithic_ppo_config
    from experiments.config_files import load_config
    from rllib_society.semi_mdp import step_discounts

    # Chain with two options: "Right, then done (Left)" (2 env steps) and "done" (1 step).
    config = load_config(None, {"env": "Chain-v0", "algo": "monolithic", "gamma": 0.9, "value_range": [0, 1],
                                "num_envs_per_env_runner": 1, "train_batch_size_per_learner": 64,
                                "minibatch_size": 32})
    algo_config = monolithic_ppo_config(config.model_copy(update={"options": ["scripted"]}))  # a config holds paths
    algo_config.environment(env_config={**algo_config.env_config, "option_done_action": 0,
                                        "options": [Scripted([1, 0]), Scripted([0])]})
    algo = algo_config.build_algo()
    try:
        pieces = [type(p).__name__ for p in algo.learner_group._learner._learner_connector.connectors]
        assert pieces[-1] == "SemiMDPAdvantages" and "GeneralAdvantageEstimation" not in pieces
        episodes = algo.env_runner.sample(num_timesteps=40, random_actions=True)
        for episode in episodes:
            lengths = [info["option_steps"] for info in episode.get_infos()[1:]]
            assert np.allclose(step_discounts(episode, 0.9), 0.9 ** np.array(lengths))
            assert set(lengths) <= {1, 2}
        algo.train()  # and PPO trains with it
    finally:
        algo.stop()


@pytest.mark.parametrize(("discount", "semi_mdp"), [("semi_mdp", True), ("per_step", False)])
def test_the_baselines_discount_over_options_is_a_config_key(discount, semi_mdp):
    from experiments.algo_config import monolithic_ppo_config
    from experiments.config_files import load_config
    from rllib_society.semi_mdp import SemiMDPPPOLearner

    config = load_config(None, {"env": "Chain-v0", "algo": "monolithic", "value_range": [0, 1],
                                "baseline_discount": discount})
    with_options = monolithic_ppo_config(config.model_copy(update={"options": ["an option"]}))
    assert (with_options.learner_class is SemiMDPPPOLearner) == semi_mdp
    assert monolithic_ppo_config(config).learner_class is not SemiMDPPPOLearner  # no options: RLlib's GAE
