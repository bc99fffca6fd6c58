"""AuctionEnv: the bid vector, clones, dropout, observations, the auction record and its episode
summary, and gymnasium's env checker."""

import numpy as np
import pytest

from rllib_society.auction import episode_utilities
from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, AuctionEnv


def make(**config):
    return AuctionEnv({"env": "Chain-v0", **config})


def bid(env, values):
    """The bid vector giving each primitive's clones the same bid."""
    return np.repeat(np.asarray(values, np.float32), env.clones)


def test_bid_vector_has_one_bid_per_clone():
    env = make(clones=3)
    assert env.num_primitives == 2 and env.num_bidders == 6
    assert env.action_space.shape == (6,) and env.observation_space.shape == (7,)


def test_gymnasium_accepts_the_env():
    from gymnasium.utils.env_checker import check_env

    check_env(make(), skip_render_check=True)


def test_winner_acts_and_the_reward_is_the_env_reward_in_bid_units():
    env = make(clones=2, value_range=[-1.0, 1.0])  # bids 0..1 stand for values -1..1
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.eye(7)[0])
    rewards = []
    for step in range(5):  # Right (p1) outbids Left (p0) five times: the goal
        obs, reward, terminated, truncated, info = env.step(bid(env, [0.2, 0.6]))
        rewards.append(reward)
    record = info[AUCTION_INFO]
    assert terminated and not truncated and record["last"]
    assert record["winner"] == 2 and record["price"] == pytest.approx(0.6)  # twin tie: c0 wins
    # Env reward 0 on the way: (0 + (1 - 0.99) * 1) / 2; the goal's 0.8 ends it: (0.8 + 1) / 2.
    np.testing.assert_allclose(rewards, [0.005] * 4 + [0.9])
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
        _, _, terminated, _, info = env.step(bid(env, b))
        if terminated:
            break
    # Left, Right, Right, Right, Right, Right: state 0,0,1,2,3,4 -> goal after 6 steps
    expected = episode_utilities(np.array(bids), [0] * 5 + [0.8], [0.99] * 6, "bb")
    summary = info[AUCTION_INFO][EPISODE_INFO]
    np.testing.assert_allclose(summary["utility"], expected.sum(axis=0) / 6, atol=1e-6)  # float32 bids


def test_time_limit_truncates():
    env = make()
    env.reset(seed=0)
    for _ in range(20):
        obs, _, terminated, truncated, info = env.step(bid(env, [0.9, 0.1]))  # always Left
    assert truncated and not terminated and info[AUCTION_INFO]["last"]
    np.testing.assert_array_equal(obs, np.eye(7)[0])


def test_dropout_keeps_two_and_is_seeded():
    env = make(env="Bandit-v0", clones=2, dropout=0.9)
    sizes = []
    for seed in range(50):
        env.reset(seed=seed)
        sizes.append(int(env.active.sum()))
    assert min(sizes) == 2 and max(sizes) <= 8
    env.reset(seed=3)
    first = env.active.copy()
    env.reset(seed=3)
    np.testing.assert_array_equal(env.active, first)


@pytest.mark.parametrize("clones", [1, 2, 3])
def test_primitive_dropout_keeps_clones_together(clones):
    env = make(env="Bandit-v0", clones=clones, dropout=0.75, dropout_unit="primitive")
    counts = []
    for seed in range(200):
        env.reset(seed=seed)
        by_primitive = env.active.reshape(env.num_primitives, clones)
        assert (by_primitive.all(axis=1) | ~by_primitive.any(axis=1)).all()  # whole primitives
        assert env.active.sum() >= 2
        counts.append(int(by_primitive.all(axis=1).sum()))
    # clones >= 2: one primitive with its twin is a valid auction; solitary needs two primitives.
    assert min(counts) == (1 if clones >= 2 else 2) and max(counts) >= 3


def test_dropped_bidders_cannot_win():
    env = make(env="Bandit-v0", clones=1, dropout=0.9)
    for seed in range(20):
        env.reset(seed=seed)
        _, _, _, _, info = env.step(1.0 - 0.1 * np.arange(4, dtype=np.float32))
        record = info[AUCTION_INFO]
        assert record["active"][record["winner"]]
        assert record["winner"] == np.flatnonzero(env.active)[0]  # highest bid among active
        assert np.isnan(record["bids"][~env.active]).all()


def test_box_observations_pass_through():
    env = AuctionEnv({"env": "FrozenLake-v1", "env_config": {"is_slippery": False}})
    assert env.num_primitives == 4 and env.observation_space.shape == (16,)


@pytest.mark.parametrize("truncation", ["end", "bootstrap"])
def test_a_time_limit_cut_ends_the_task_or_is_priced(truncation):
    # Chain's 20-step limit; Left (p0) always wins, so the episode is cut, never finished.
    env = make(clones=1, auction="v", value_range=[-1.0, 1.0], truncation=truncation)
    env.reset(seed=0)
    records = []
    for t in range(20):
        _, reward, terminated, truncated, info = env.step(bid(env, [0.6, 0.2]))
        records.append(info[AUCTION_INFO])
    assert not terminated
    cut = records[-1]
    if truncation == "end":
        assert truncated and cut["last"] and not cut["pricing"]
        assert reward == pytest.approx((0 + 1) / 2)  # the cut ends the task: (R - lo) / (hi - lo)
        summary = cut[EPISODE_INFO]
    else:
        assert not truncated and not cut["last"]  # the cut state is priced first
        assert reward == pytest.approx((0 + (1 - 0.99) * 1) / 2)  # as if the episode went on
        _, priced, terminated, truncated, info = env.step(bid(env, [0.7, 0.3]))
        pricing = info[AUCTION_INFO]
        assert truncated and not terminated and pricing["last"] and pricing["pricing"] and priced == 0
        assert pricing["winner"] == 0 and pricing["price"] == pytest.approx(0.3)
        summary = pricing[EPISODE_INFO]
        assert summary["priced_cut"]
    # The cut auction's Vickrey utility: its reward + gamma * the next winning bid - its price.
    lookahead = 0.7 if truncation == "bootstrap" else 0.0
    expected = cut["reward"] + 0.99 * lookahead - 0.2
    assert summary["auction_steps"] == 20 and summary["env_steps"] == 20
    by_hand = sum(r["reward"] + 0.99 * 0.6 - 0.2 for r in records[:-1]) + expected
    assert summary["utility"][0] * 20 == pytest.approx(by_hand, abs=1e-6)
