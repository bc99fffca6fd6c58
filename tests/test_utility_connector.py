"""The advantages PPO trains each bid on come from the exact auction utilities of its episode.

Like SB3's GAE test: sample real episodes, recompute the utilities independently from the
recorded actions (the bids) and the env rewards, and compare them with what the learner's own
connector pipeline puts into the train batch.
"""

import copy

import numpy as np
import pytest
import torch
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_society.algo_config import build_algo_config
from rllib_society.auction import episode_utilities
from rllib_society.config import load_config
from rllib_society.auction_env import AUCTION_INFO
from rllib_society.utility_connector import BIDDER_MASK, SocietyAdvantages


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


def learner_batch(algo):
    """Samples episodes and runs the learner's whole connector pipeline on copies of them.
    Returns (the original episodes, the society module's train batch, the learner)."""
    episodes = algo.env_runner.sample(num_timesteps=300, random_actions=False)
    originals = [copy.deepcopy(e) for e in episodes]
    learner = algo.learner_group._learner
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes,
                                       shared_data={}, metrics=learner.metrics)
    (module_batch,) = batch.values()
    return originals, {k: v.detach().numpy() for k, v in module_batch.items()}, learner


def expected(episodes, auction, gamma):
    """(rows, bidders) utilities and mask from the recorded bids, rewards and active bidders,
    with PPO's artificial last row per chunk."""
    utilities, masks = [], []
    for episode in episodes:
        bids = np.clip(episode.get_actions(), 0, 1)
        active = np.stack([info[AUCTION_INFO]["active"] for info in episode.get_infos()[1:]])
        steps = len(bids)
        u = episode_utilities(np.where(active, bids, np.nan), episode.get_rewards(),
                              np.full(steps, gamma), auction, active)
        exact = steps if episode.is_done else steps - 1  # a cut chunk's last auction is unknowable
        mask = active.copy()
        mask[exact:] = False
        utilities.append(np.vstack([u, np.zeros((1, u.shape[1]))]))
        masks.append(np.vstack([mask, np.zeros((1, u.shape[1]), bool)]))
    return np.vstack(utilities), np.vstack(masks)


def test_learner_pipeline_ends_with_the_society_advantages(algorithms):
    pipeline = build(algorithms, "ccv").learner_group._learner._learner_connector
    order = [type(c) for c in pipeline.connectors]
    assert order[-1] is SocietyAdvantages and GeneralAdvantageEstimation not in order


@pytest.mark.parametrize("auction, dropout", [("ccv", 0.0), ("v", 0.3), ("bb", 0.3), ("env", 0.0)])
def test_value_targets_are_the_exact_utilities(algorithms, auction, dropout):
    originals, batch, _ = learner_batch(build(algorithms, auction, dropout=dropout))
    utilities, mask = expected(originals, auction, gamma=0.99)
    np.testing.assert_array_equal(batch[BIDDER_MASK], mask)
    np.testing.assert_allclose(batch[Postprocessing.VALUE_TARGETS][mask], utilities[mask], atol=1e-6)
    cut = [e for e in originals if not e.is_done]
    assert cut and mask.sum() > 200  # both chunk kinds were exercised
    if dropout:
        sizes = {int(info[AUCTION_INFO]["active"].sum()) for e in originals for info in e.get_infos()[1:]}
        assert min(sizes) >= 2 and len(sizes) > 1  # dropout varies the society, two always stay


def test_exact_advantages_are_utility_minus_value(algorithms):
    originals, batch, learner = learner_batch(build(algorithms, "ccv", standardize_advantages=False))
    (module,) = learner.module._rl_modules.values()
    with torch.no_grad():
        values = module.compute_values({"obs": torch.as_tensor(batch["obs"])}).numpy()
    targets = batch[Postprocessing.VALUE_TARGETS]
    np.testing.assert_allclose(batch[Postprocessing.ADVANTAGES], targets - np.repeat(values, 2, axis=1), atol=1e-6)


def test_standardized_advantages_are_per_primitive(algorithms):
    _, batch, _ = learner_batch(build(algorithms, "ccv", dropout=0.3))
    advantages, mask = batch[Postprocessing.ADVANTAGES], batch[BIDDER_MASK]
    for first in (0, 2):  # primitive k owns bidder columns 2k, 2k + 1
        valid = advantages[:, first:first + 2][mask[:, first:first + 2]]
        assert abs(valid.mean()) < 1e-4 and abs(valid.std() - 1.0) < 1e-3
