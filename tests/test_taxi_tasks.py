"""Taxi's sub-tasks (envs/taxi_tasks.py): the options' pre-training envs."""

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.taxi_tasks import LANDMARKS, taxi_cell, taxi_cell_observation

SOUTH, NORTH, EAST, WEST, PICKUP, DROPOFF = range(6)


def task_at(env_id, row, col, passenger=0, destination=1):
    env = gym.make(env_id)
    env.reset(seed=0)
    taxi = env.unwrapped.taxi
    taxi.s = taxi.encode(row, col, passenger, destination)
    return env, taxi


@pytest.mark.parametrize("landmark", list(LANDMARKS))
def test_the_tasks_final_action_on_its_landmark_pays_one_and_ends(landmark):
    row, col = LANDMARKS[landmark]
    env, _ = task_at(f"TaxiTask-{landmark}-Dropoff-v0", row, col)
    assert env.step(DROPOFF)[1:3] == (1.0, True)
    env, _ = task_at(f"TaxiTask-{landmark}-Pickup-v0", row, col, passenger=4)  # whatever the passenger
    assert env.step(PICKUP)[1:3] == (1.0, True)


def test_a_final_action_elsewhere_or_the_other_one_pays_nothing_and_ends():
    env, _ = task_at("TaxiTask-R-Pickup-v0", 0, 1)
    assert env.step(PICKUP)[1:3] == (0.0, True)
    env, _ = task_at("TaxiTask-R-Pickup-v0", 0, 0)
    assert env.step(DROPOFF)[1:3] == (0.0, True)


def test_moves_follow_taxis_walls_and_pay_nothing():
    env, taxi = task_at("TaxiTask-G-Pickup-v0", 0, 1)
    cell, reward, terminated, _, _ = env.step(EAST)  # a wall between columns 1 and 2
    assert (reward, terminated) == (0.0, False) and cell == 0 * 5 + 1
    cell, *_ = env.step(SOUTH)
    assert cell == 1 * 5 + 1


def test_episodes_start_anywhere_the_passenger_in_the_taxi_too_and_are_cut_at_25_steps():
    env = gym.make("TaxiTask-Y-Dropoff-v0")
    starts = []
    for seed in range(2000):
        cell, _ = env.reset(seed=seed)
        starts.append(env.unwrapped.taxi.s)
        assert cell == taxi_cell(starts[-1]) == list(env.unwrapped.taxi.decode(starts[-1]))[0] * 5 + \
            list(env.unwrapped.taxi.decode(starts[-1]))[1]
    assert len(set(starts)) > 450 and {list(env.unwrapped.taxi.decode(s))[2] for s in starts} == set(range(5))
    env.reset(seed=3)
    first = env.unwrapped.taxi.s
    env.reset(seed=3)
    assert env.unwrapped.taxi.s == first
    env.reset(seed=0)
    for step in range(25):
        *_, terminated, truncated, _ = env.step(NORTH)
    assert truncated and not terminated


def test_bad_task_names_are_refused():
    from envs.taxi_tasks import TaxiTaskEnv

    with pytest.raises(ValueError, match="landmark='X' is not allowed; allowed: R, G, Y, B"):
        TaxiTaskEnv("X")
    with pytest.raises(ValueError, match="final='park' is not allowed; allowed: pickup, dropoff"):
        TaxiTaskEnv("R", "park")


def test_an_option_observes_the_taxis_cell_one_hot():
    taxi = gym.make("Taxi-v3").unwrapped
    observation = taxi_cell_observation(taxi.encode(3, 2, 4, 1))
    assert observation.shape == (25,) and observation.sum() == 1 and observation[3 * 5 + 2] == 1


def test_option_observation_is_a_function_that_imports():
    from rllib_society.auction_env import DEFAULT_SOCIETY_CONFIG
    from rllib_society.settings import check_society_settings

    check_society_settings({**DEFAULT_SOCIETY_CONFIG, "env": "Taxi-v3",
                            "option_observation": "envs.taxi_tasks:taxi_cell_observation"})
    for name in ("envs.taxi_tasks:nope", "envs.nope:taxi_cell", "taxi_cell", "envs.taxi_tasks:HORIZON"):
        with pytest.raises(ValueError, match=f"option_observation='{name}' is not allowed; option_observation "
                                             "must be None or 'module:function'"):
            check_society_settings({**DEFAULT_SOCIETY_CONFIG, "env": "Taxi-v3", "option_observation": name})
