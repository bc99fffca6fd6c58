"""Taxi's sub-tasks (envs/taxi_tasks.py): the options' pre-training envs."""

import gymnasium as gym
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.taxi_tasks import LANDMARKS

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
    state, reward, terminated, _, _ = env.step(EAST)  # a wall between columns 1 and 2
    assert (reward, terminated) == (0.0, False) and list(taxi.decode(state))[:2] == [0, 1]
    state, *_ = env.step(SOUTH)
    assert list(taxi.decode(state))[:2] == [1, 1]


def test_episodes_start_anywhere_the_passenger_in_the_taxi_too_and_are_cut_at_25_steps():
    env = gym.make("TaxiTask-Y-Dropoff-v0")
    starts = {env.reset(seed=seed)[0] for seed in range(2000)}
    assert len(starts) > 450 and {list(env.unwrapped.taxi.decode(s))[2] for s in starts} == set(range(5))
    assert env.reset(seed=3)[0] == env.reset(seed=3)[0]
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
