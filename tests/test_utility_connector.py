"""The rewards PPO trains each bid on equal the exact auction utilities of its episode.

Like SB3's GAE test: sample real episodes, recompute the utilities independently from the
recorded actions (the bids) and the env rewards, and compare them with what the learner's own
connector pipeline puts into the train batch.
"""

import copy

import numpy as np
import pytest
from ray.rllib.connectors.learner import (
    AddColumnsFromEpisodesToTrainBatch,
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.core.columns import Columns

from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_society.advantages import MemorylessAdvantages
from rllib_society.algo_config import build_algo_config
from rllib_society.auction import episode_utilities
from rllib_society.config import load_config
from rllib_society.utility_connector import AuctionUtilityConnector


@pytest.fixture(scope="module")
def algorithms(ray_session):
    built = {}
    yield built
    for algo in built.values():
        algo.stop()


def build(algorithms, auction, **overrides):
    key = (auction, tuple(sorted(overrides.items())))
    if key not in algorithms:
        # 8 envs x fragments of 7 steps: many chunks are cut mid-episode.
        small_batch = {"train_batch_size_per_learner": 56, "minibatch_size": 56}
        config = load_config("configs/chain.yaml", {"auction": auction, **small_batch, **overrides})
        algo_config = build_algo_config(config).env_runners(rollout_fragment_length=7)
        algorithms[key] = algo_config.build_algo()
    return algorithms[key]


def expected_utilities(episode, auction, gamma):
    """(T, agents) utilities of one episode chunk from its actions and placeholder rewards."""
    agents = sorted(episode.agent_episodes, key=lambda a: (int(a[1:].split("_")[0]), a))
    chunks = [episode.agent_episodes[a] for a in agents]
    bids = np.stack([c.get_actions()[:, 0] for c in chunks], axis=1)
    env_rewards = np.sum([c.get_rewards() for c in chunks], axis=0)  # the winner got r_t, others 0
    steps = len(bids)
    return agents, episode_utilities(bids, env_rewards, np.full(steps, gamma), auction)


def pipeline_order(algo):
    return [type(c) for c in algo.learner_group._learner._learner_connector.connectors]


def test_learner_pipeline_places_the_connector_before_rewards_are_batched(algorithms):
    order = pipeline_order(build(algorithms, "ccv"))
    position = order.index(AuctionUtilityConnector)
    assert order[position - 1] is AddOneTsToEpisodesAndTruncate
    assert position < order.index(AddColumnsFromEpisodesToTrainBatch) < order.index(GeneralAdvantageEstimation)
    # Without standardization, the memoryless advantages replace GAE, last in the pipeline.
    exact = pipeline_order(build(algorithms, "ccv", standardize_advantages=False))
    assert exact[-1] is MemorylessAdvantages and GeneralAdvantageEstimation not in exact


def test_exact_advantages_are_utility_minus_value(algorithms):
    algo = build(algorithms, "ccv", standardize_advantages=False)
    episodes = algo.env_runner.sample(num_timesteps=300, random_actions=False)
    learner = algo.learner_group._learner
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes,
                                       shared_data={}, metrics=learner.metrics)
    for module_id, module_batch in batch.items():
        rewards = module_batch[Columns.REWARDS].numpy()
        values = learner.module[module_id].compute_values(module_batch).detach().numpy()
        advantages = module_batch[Postprocessing.ADVANTAGES].numpy()
        np.testing.assert_allclose(advantages, rewards - values, atol=1e-6)
        np.testing.assert_allclose(module_batch[Postprocessing.VALUE_TARGETS].numpy(), rewards)
        assert abs(advantages.std() - 1.0) > 0.1  # not standardized


@pytest.mark.parametrize("auction, dropout", [("ccv", 0.0), ("v", 0.3), ("bb", 0.3), ("env", 0.0)])
def test_batch_rewards_equal_exact_utilities(algorithms, auction, dropout):
    algo = build(algorithms, auction, dropout=dropout)
    episodes = algo.env_runner.sample(num_timesteps=300, random_actions=False)
    originals = {id(e): copy.deepcopy(e) for e in episodes}
    learner = algo.learner_group._learner
    pipeline = learner._learner_connector.connectors
    # Run PPO's learner pipeline up to the point where rewards enter the train batch.
    batch, shared = {}, {}
    for piece in pipeline[: pipeline.index(next(c for c in pipeline if isinstance(c, AddColumnsFromEpisodesToTrainBatch))) + 1]:
        batch = piece(rl_module=learner.module, batch=batch, episodes=episodes, shared_data=shared)

    checked = masked = cut_chunks = 0
    for episode in episodes:
        original = originals[id(episode)]
        agents, utilities = expected_utilities(original, auction, gamma=0.99)
        steps = len(utilities)
        done = original.is_done
        cut_chunks += not done
        for column, agent in enumerate(agents):
            key = (episode.id_, agent, agent.split("_")[0])
            rewards = np.asarray(batch[Columns.REWARDS][key], dtype=np.float64).reshape(-1)
            mask = np.asarray(batch[Columns.LOSS_MASK][key], dtype=bool).reshape(-1)
            assert len(rewards) == steps + 1  # plus PPO's artificial bootstrap step
            exact = steps if done else steps - 1  # a cut chunk's last auction is unknowable
            np.testing.assert_allclose(rewards[:exact], utilities[:exact, column], atol=1e-6)
            assert mask[:exact].all() and not mask[exact:].any()
            checked += exact
            masked += steps - exact
    assert cut_chunks > 0 and checked > 200  # both chunk kinds were exercised
    assert masked == sum(len(originals[id(e)].agent_episodes) for e in episodes if not originals[id(e)].is_done)


def test_dropout_varies_the_society_and_keeps_two(algorithms):
    algo = build(algorithms, "ccv", dropout=0.3)
    episodes = algo.env_runner.sample(num_timesteps=300, random_actions=False)
    sizes = {len(e.agent_episodes) for e in episodes}
    assert min(sizes) >= 2 and len(sizes) > 1  # dropout varies the society, two always stay
