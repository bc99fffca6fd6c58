"""Tests of the toy envs, their registration and `optimal_q_values` (no Ray)."""

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.bandit import BanditEnv
from envs.chain import ChainEnv
from envs.duality import DualityEnv
from envs.tabular import TabularEnv
from rllib_society import optimal_q_values

GAMMA = 0.99
LEFT, RIGHT = 0, 1
CHAIN_LIMIT, DUALITY_LIMIT = 20, 10
CHAIN_GOAL = 5
#: Q* of the chain with gamma 0.99 from the spec, rows s = 0..4, columns (Left, Right).
CHAIN_Q_STAR = [
    [0.760792, 0.768477],
    [0.760792, 0.776239],
    [0.768477, 0.784080],
    [0.776239, 0.792000],
    [0.784080, 0.800000],
]
ENV_CLASSES = {"Bandit-v0": BanditEnv, "Chain-v0": ChainEnv, "Duality-v0": DualityEnv}


def run(env: gym.Env, actions: list[int], seed: int = 0) -> list[tuple]:
    """Steps `env` through `actions` after a reset; returns the (obs, reward, terminated,
    truncated) of each step."""
    env.reset(seed=seed)
    return [env.step(action)[:4] for action in actions]


@pytest.mark.parametrize("env_id", ENV_CLASSES)
def test_env_checker_passes(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(ENV_CLASSES[env_id](), skip_render_check=True)
        check_env(gym.make(env_id).unwrapped)


@pytest.mark.parametrize(
    "env_id, n_obs, n_actions, max_steps",
    [
        ("Bandit-v0", 2, 4, None),
        ("Chain-v0", 7, 2, CHAIN_LIMIT),
        ("Duality-v0", 3, 2, DUALITY_LIMIT),
    ],
)
def test_registration_and_spaces(env_id, n_obs, n_actions, max_steps):
    env = gym.make(env_id)
    assert env_id in envs.ENV_IDS
    assert env.spec.max_episode_steps == max_steps
    assert env.observation_space == gym.spaces.Discrete(n_obs)
    assert env.action_space == gym.spaces.Discrete(n_actions)
    assert env.reset(seed=0)[0] == 0
    assert env.unwrapped.q_star(GAMMA).shape == (n_obs, n_actions)


def test_importing_envs_again_does_not_reregister():
    before = {env_id: gym.spec(env_id) for env_id in envs.ENV_IDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(envs)
    assert all(gym.spec(env_id) is spec for env_id, spec in before.items())


def test_chain_reaches_goal_in_five_rights():
    steps = run(gym.make("Chain-v0"), [RIGHT] * CHAIN_GOAL)
    assert [obs for obs, *_ in steps] == [1, 2, 3, 4, CHAIN_GOAL]
    assert [reward for _, reward, *_ in steps] == [0.0, 0.0, 0.0, 0.0, 0.8]
    assert [terminated for _, _, terminated, _ in steps] == [False] * 4 + [True]
    assert not any(truncated for *_, truncated in steps)


def test_chain_left_wall_and_right_after_left():
    steps = run(gym.make("Chain-v0"), [LEFT, RIGHT, LEFT, LEFT])
    assert [obs for obs, *_ in steps] == [0, 1, 0, 0]
    assert all(reward == 0.0 and not terminated for _, reward, terminated, _ in steps)


def test_chain_truncates_at_time_limit():
    steps = run(gym.make("Chain-v0"), [LEFT] * CHAIN_LIMIT)
    assert [truncated for *_, truncated in steps] == [False] * (CHAIN_LIMIT - 1) + [True]
    assert not any(terminated for _, _, terminated, _ in steps)


def test_duality_alternation_returns_five_and_truncates():
    steps = run(gym.make("Duality-v0"), [1, 0] * (DUALITY_LIMIT // 2))
    assert [obs for obs, *_ in steps] == [1, 0] * (DUALITY_LIMIT // 2)
    assert sum(reward for _, reward, *_ in steps) == pytest.approx(5.0)
    assert [truncated for *_, truncated in steps] == [False] * (DUALITY_LIMIT - 1) + [True]
    assert not any(terminated for _, _, terminated, _ in steps)


@pytest.mark.parametrize("then", [0, 1])
def test_duality_action_zero_at_start_is_absorbed(then):
    steps = run(gym.make("Duality-v0"), [0] + [then] * 3)
    assert [obs for obs, *_ in steps] == [2, 2, 2, 2]
    assert [reward for _, reward, *_ in steps] == [0.0, -1.0, -1.0, -1.0]


@pytest.mark.parametrize("arm", range(4))
def test_bandit_arm_pays_its_value_and_terminates(arm):
    [(obs, reward, terminated, truncated)] = run(gym.make("Bandit-v0"), [arm])
    assert (obs, terminated, truncated) == (1, True, False)
    assert reward == pytest.approx((arm + 1) / 5)


def test_chain_q_star_matches_spec():
    q = ChainEnv().q_star(GAMMA)
    np.testing.assert_allclose(q[:CHAIN_GOAL], CHAIN_Q_STAR, atol=1e-6)
    np.testing.assert_array_equal(q[CHAIN_GOAL:], 0.0)


def test_chain_extra_actions_stay_and_keep_q_star():
    env = gym.make("Chain-v0", num_actions=5)
    assert env.action_space.n == 5
    [(obs, reward, terminated, _)] = run(env, [3])
    assert (obs, reward, terminated) == (0, 0.0, False)
    q = ChainEnv(num_actions=5).q_star(GAMMA)
    np.testing.assert_allclose(q[:CHAIN_GOAL, :2], CHAIN_Q_STAR, atol=1e-6)
    np.testing.assert_allclose(q[:CHAIN_GOAL, 4], GAMMA * np.array(CHAIN_Q_STAR)[:, 1], atol=1e-6)
    with pytest.raises(ValueError, match="num_actions=1"):
        ChainEnv(num_actions=1)


def test_bandit_q_star_matches_spec():
    q = BanditEnv().q_star(GAMMA)
    np.testing.assert_allclose(q[0], [0.2, 0.4, 0.6, 0.8], atol=1e-9)
    np.testing.assert_array_equal(q[1], 0.0)


def test_duality_q_star_matches_spec():
    q = DualityEnv().q_star(GAMMA)
    assert q[0, 1] == pytest.approx(50.0, abs=1e-6)
    assert q[0, 0] == pytest.approx(-99.0, abs=1e-6)
    assert q[2].max() == pytest.approx(-100.0, abs=1e-6)


def test_q_values_on_frozen_lake():
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=False)
    q = optimal_q_values(env.unwrapped.P, GAMMA)
    right, next_to_goal, holes = 2, 14, [5, 7, 11, 12]
    assert q[next_to_goal, right] == pytest.approx(1.0)
    assert q[0].max() == pytest.approx(GAMMA**5)  # six steps from start to goal
    np.testing.assert_array_equal(q[holes], 0.0)


def test_terminated_transition_does_not_bootstrap():
    # State 1 is worth 1 / (1 - gamma), but entering it from state 0 terminates.
    P = {0: {0: [(1.0, 1, 1.0, True)]}, 1: {0: [(1.0, 1, 1.0, False)]}}
    q = optimal_q_values(P, GAMMA)
    assert q[0, 0] == pytest.approx(1.0)
    assert q[1, 0] == pytest.approx(1 / (1 - GAMMA), rel=1e-6)


def test_stochastic_table_q_and_sampling():
    # Half the time the step pays 1 and ends, half the time it stays in state 0.
    P = {0: {0: [(0.5, 1, 1.0, True), (0.5, 0, 0.0, False)]}, 1: {0: [(1.0, 1, 0.0, True)]}}
    env = TabularEnv(P)
    assert env.q_star(GAMMA)[0, 0] == pytest.approx(0.5 / (1 - 0.5 * GAMMA))
    outcomes = [run(env, [0], seed=seed)[0][0] for seed in range(50)]
    assert set(outcomes) == {0, 1}
    assert outcomes == [run(env, [0], seed=seed)[0][0] for seed in range(50)]


def test_non_convergence_raises():
    P = {0: {0: [(1.0, 0, 1.0, False)]}}
    with pytest.raises(RuntimeError, match="did not converge"):
        optimal_q_values(P, 1.0, max_iters=100)


GOOD = (1.0, 0, 0.0, False)


@pytest.mark.parametrize(
    "P, message",
    [
        ([[[GOOD]]], "non-empty dict of states"),
        ({}, "non-empty dict of states"),
        ({1: {0: [GOOD]}}, "states must be 0..0"),
        ({0: [[GOOD]]}, "non-empty dict of actions"),
        ({0: {0: [GOOD]}, 1: {1: [GOOD]}}, "actions must be 0..0"),
        ({0: {0: None}}, "must be a non-empty list"),
        ({0: {0: []}}, "must be a non-empty list"),
        ({0: {0: [(1.0, 0, 0.0)]}}, "4-tuple"),
        ({0: {0: [(0.5, 0, 0.0, False), (0.4, 0, 0.0, False)]}}, "sum to 0.9"),
        ({0: {0: [(-1.0, 0, 0.0, False)]}}, "probability"),
        ({0: {0: [(1.0, 1, 0.0, False)]}}, "next state"),
        ({0: {0: [(1.0, 0, "1", False)]}}, "reward"),
        ({0: {0: [(1.0, 0, 0.0, "no")]}}, "terminated"),
    ],
)
def test_malformed_table_raises(P, message):
    with pytest.raises(ValueError, match=message):
        optimal_q_values(P, GAMMA)


@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_gamma_out_of_range_raises(gamma):
    with pytest.raises(ValueError, match="gamma"):
        optimal_q_values({0: {0: [GOOD]}}, gamma)
