"""SocietyEnv: agent ids, clones, dropout, observations, the auction record and its episode
summary, and RLlib's own multi-agent env checker."""

import numpy as np
import pytest

from rllib_society.auction import episode_utilities
from rllib_society.society_env import AUCTION_INFO, EPISODE_INFO, SocietyEnv, module_id_of


def make(**config):
    return SocietyEnv({"env": "Chain-v0", **config})


def bid(env, values):
    """Action dict giving each primitive's clones the same bid."""
    return {a: np.array([values[int(module_id_of(a)[1:])]], np.float32) for a in env.agents}


def test_agent_ids_clones_and_modules():
    env = make(clones=3)
    assert env.possible_agents == [f"p{k}_c{c}" for k in range(2) for c in range(3)]
    assert {module_id_of(a) for a in env.possible_agents} == {"p0", "p1"}
    assert env.observation_spaces["p0_c0"].shape == (7,)


def test_rllib_accepts_the_env():
    from ray.rllib.utils.pre_checks.env import check_multiagent_environments

    check_multiagent_environments(make())


def test_winner_acts_and_gets_the_env_reward_as_placeholder():
    env = make(clones=2, reward_scale=0.5)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs["p0_c0"], np.eye(7)[0])
    for step in range(5):  # Right (p1) outbids Left (p0) five times: the goal
        obs, rewards, terminated, truncated, infos = env.step(bid(env, [0.2, 0.6]))
    record = infos["p1_c0"][AUCTION_INFO]
    assert terminated["__all__"] and not truncated["__all__"] and record["last"]
    assert record["winner"] == 2 and record["price"] == pytest.approx(0.6)  # twin tie: c0 wins
    assert rewards == {"p0_c0": 0.0, "p0_c1": 0.0, "p1_c0": pytest.approx(0.4), "p1_c1": 0.0}
    summary = record[EPISODE_INFO]
    assert summary["env_return"] == pytest.approx(0.8)  # env units, not scaled
    assert summary["env_steps"] == summary["auction_steps"] == 5
    np.testing.assert_allclose(summary["win_freq"], [0.0, 1.0])
    np.testing.assert_allclose(summary["mean_bid"], [0.2, 0.6], atol=1e-6)


def test_episode_summary_utilities_match_the_auction_maths():
    env = make(clones=1, auction="bb")
    env.reset(seed=0)
    bids = [[0.5, 0.3], [0.1, 0.7], [0.2, 0.9], [0.6, 0.8], [0.1, 0.4], [0.3, 0.35]]
    for b in bids:
        _, _, terminated, _, infos = env.step(bid(env, b))
        if terminated["__all__"]:
            break
    # Left, Right, Right, Right, Right, Right: state 0,0,1,2,3,4 -> goal after 6 steps
    expected = episode_utilities(np.array(bids), [0] * 5 + [0.8], [0.99] * 6, "bb")
    summary = infos["p0_c0"][AUCTION_INFO][EPISODE_INFO]
    np.testing.assert_allclose(summary["utility"], expected.sum(axis=0) / 6, atol=1e-6)  # float32 bids


def test_time_limit_truncates_and_every_agent_gets_a_final_observation():
    env = make()
    env.reset(seed=0)
    for _ in range(20):
        obs, _, terminated, truncated, _ = env.step(bid(env, [0.9, 0.1]))  # always Left
    assert truncated["__all__"] and not terminated["__all__"]
    assert set(obs) == set(env.agents)


def test_dropout_keeps_two_and_is_seeded():
    env = make(env="Bandit-v0", clones=2, dropout=0.9)
    sizes = []
    for seed in range(50):
        env.reset(seed=seed)
        sizes.append(len(env.agents))
    assert min(sizes) == 2 and max(sizes) <= 8
    env.reset(seed=3)
    first = list(env.agents)
    env.reset(seed=3)
    assert env.agents == first


@pytest.mark.parametrize("clones", [1, 2, 3])
def test_primitive_dropout_keeps_clones_together(clones):
    env = make(env="Bandit-v0", clones=clones, dropout=0.75, dropout_unit="primitive")
    counts = []
    for seed in range(200):
        env.reset(seed=seed)
        primitives = [module_id_of(a) for a in env.agents]
        assert all(primitives.count(p) == clones for p in set(primitives))  # whole primitives
        assert len(env.agents) >= 2
        counts.append(len(set(primitives)))
    # clones >= 2: one primitive with its twin is a valid auction; solitary needs two primitives.
    assert min(counts) == (1 if clones >= 2 else 2) and max(counts) >= 3


def test_dropped_agents_cannot_win():
    env = make(env="Bandit-v0", clones=1, dropout=0.9)
    for seed in range(20):
        env.reset(seed=seed)
        _, _, _, _, infos = env.step({a: np.array([1.0 - 0.1 * int(a[1])], np.float32) for a in env.agents})
        record = next(iter(infos.values()))[AUCTION_INFO]
        assert record["active"][record["winner"]]
        assert env.possible_agents[record["winner"]] == env.agents[0]  # highest bid among active


def test_box_observations_pass_through():
    env = SocietyEnv({"env": "FrozenLake-v1", "env_config": {"is_slippery": False}})
    assert env.num_primitives == 4 and env.observation_spaces["p0_c0"].shape == (16,)
