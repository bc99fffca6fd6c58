"""Values of any sign in bids of [0, 1]: the map keeps the optimal policy where shifting every
reward does not, and the default range comes from Q*, else the env's reward range, else the user."""

import gymnasium as gym
import numpy as np
import pytest

from rllib_society import optimal_q_values
from rllib_society.value_range import bid_reward, check_value_range, default_value_range, to_bids

GAMMA = 0.99
RIGHT, STAY, QUIT = 0, 1, 2


def loop_or_walk() -> dict:
    """Three cells: RIGHT walks towards the goal (-1 a step, the last step ends it), STAY costs -1
    and stays, QUIT ends the episode at once for -5. Walking is optimal; add 5 to every reward
    (the naive way into [0, 1] * 5) and staying forever pays 4 a step instead."""
    table = {}
    for cell in range(3):
        table[cell] = {
            RIGHT: [(1.0, min(cell + 1, 2), -1.0, cell == 2)],
            STAY: [(1.0, cell, -1.0, False)],
            QUIT: [(1.0, cell, -5.0, True)],
        }
    return table


def mapped(table: dict, transform) -> dict:
    return {s: {a: [(p, s2, transform(r, done), done) for p, s2, r, done in moves] for a, moves in actions.items()}
            for s, actions in table.items()}


def test_the_map_keeps_the_greedy_policy_where_the_naive_shift_changes_it():
    table = loop_or_walk()
    q = optimal_q_values(table, GAMMA)
    assert (q.argmax(axis=1) == RIGHT).all()
    naive = optimal_q_values(mapped(table, lambda r, done: (r + 5) / 5), GAMMA)
    assert naive.argmax(axis=1)[2] == STAY  # next to the goal the shift pays for never ending
    value_range = (float(q.min()), float(q.max()))
    ours = optimal_q_values(mapped(table, lambda r, done: bid_reward(r, GAMMA, done, value_range)), GAMMA)
    assert (ours.argmax(axis=1) == RIGHT).all()
    np.testing.assert_allclose(ours, to_bids(q, value_range), atol=1e-8)  # bids = the image of Q*
    assert ours.min() == pytest.approx(0) and ours.max() == pytest.approx(1)


def test_every_episode_gets_the_same_added_return():
    lo, hi = -3.0, 2.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        length = int(rng.integers(1, 30))
        rewards, discounts = rng.normal(size=length), GAMMA ** rng.integers(1, 4, size=length)
        env_return = mapped_return = 0.0
        weight = 1.0
        for t in range(length):  # a naive loop: options of several env steps discount by more
            env_return += weight * rewards[t]
            mapped_return += weight * bid_reward(rewards[t], discounts[t], t == length - 1, (lo, hi))
            weight *= discounts[t]
        assert mapped_return == pytest.approx((env_return - lo) / (hi - lo))


def test_the_default_range_is_q_star_widened_to_0_1_else_the_reward_range_else_an_error():
    import envs  # noqa: F401

    assert default_value_range(gym.make("Chain-v0"), GAMMA) == (0.0, 1.0)  # the paper's tasks: identity
    lo, hi = default_value_range(gym.make("CliffWalking-v1"), GAMMA)
    q = optimal_q_values(gym.make("CliffWalking-v1").unwrapped.P, GAMMA)
    assert (lo, hi) == (pytest.approx(q.min()), 1.0) and lo < -13
    lo, hi = default_value_range(gym.make("envs:TwoRooms-Pretrain-v0"), GAMMA)  # (0, 1) rewards, 50 steps
    assert (lo, hi) == (0.0, pytest.approx((1 - GAMMA ** 50) / (1 - GAMMA)))
    with pytest.raises(ValueError, match=r"value_range=None is not allowed for env 'CartPole-v1'.*\[lo, hi\]"):
        default_value_range(gym.make("CartPole-v1"), GAMMA, "CartPole-v1")


@pytest.mark.parametrize("bad", [[1, 0], [0], [0, float("inf")], "0,1", [True, 2]])
def test_bad_ranges_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"value_range=.* is not allowed; value_range must be"):
        check_value_range(bad)


def test_q_with_a_cut_that_ends_the_task_counts_the_steps_left():
    import envs  # noqa: F401
    from rllib_society import finite_horizon_q_values

    table = gym.make("Chain-v0").unwrapped.P  # 5 steps Right from state 0 reach the goal's 0.8
    q = finite_horizon_q_values(table, GAMMA, 30)
    assert q[4][0, 1] == 0 and q[5][0, 1] == pytest.approx(0.8 * GAMMA ** 4)  # too few steps left: 0
    np.testing.assert_allclose(q[30], optimal_q_values(table, GAMMA), atol=1e-12)
