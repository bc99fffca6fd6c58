"""TwoRooms: the layout and each task's success condition, through scripted action sequences."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from envs.two_rooms import BLUE_POS, DOOR_POS, GREEN_POS, HORIZON, ROOM_1, ROOM_2, TwoRoomsEnv

LEFT, RIGHT, FORWARD, TOGGLE, DONE = 0, 1, 2, 5, 6
EAST = 0


def play(task: str, actions: list[int], agent_pos=(3, 2), agent_dir=EAST):
    """Runs `actions` from a fixed start; returns the registered env and the last step."""
    env = gym.make(f"TwoRooms-{task.capitalize()}-v0", agent_pos=agent_pos, agent_dir=agent_dir)
    env.reset(seed=0)
    step = None
    for action in actions:
        step = env.step(action)
        if step[2] or step[3]:
            break
    return env, step


def success_reward(steps: int) -> float:
    return 1 - 0.9 * steps / HORIZON


def test_layout_two_rooms_a_closed_red_door_and_the_two_tiles():
    env = TwoRoomsEnv("pretrain")
    env.reset(seed=0)
    assert (env.width, env.height) == (9, 5)
    door = env.grid.get(*DOOR_POS)
    assert door.type == "door" and door.color == "red" and not door.is_open and not door.is_locked
    assert env.grid.get(*GREEN_POS).color == "green" and env.grid.get(*BLUE_POS).color == "blue"
    assert env.grid.get(*GREEN_POS).can_overlap() and env.grid.get(*BLUE_POS).can_overlap()
    assert all(env.grid.get(4, y).type == "wall" for y in range(5) if (4, y) != DOOR_POS)


@pytest.mark.parametrize("task, room", [("red", ROOM_1), ("pretrain", ROOM_1), ("transfer", ROOM_1),
                                        ("green", ROOM_2), ("blue", ROOM_2)])
def test_each_task_starts_in_its_room(task, room):
    env = gym.make(f"TwoRooms-{task.capitalize()}-v0")
    starts = set()
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert obs.shape == (7, 7, 3) and env.observation_space.contains(obs)
        starts.add(tuple(env.unwrapped.agent_pos))
    assert starts <= set(room) and len(starts) > 3


def test_red_succeeds_with_the_door_open_and_the_agent_in_room_2():
    _, (_, reward, terminated, _, info) = play("red", [TOGGLE, FORWARD, FORWARD, DONE])
    assert terminated and info["success"] and reward == pytest.approx(success_reward(4))


@pytest.mark.parametrize("actions", [
    [DONE],                                     # door closed, room 1
    [TOGGLE, FORWARD, DONE],                    # standing in the doorway, not in room 2
    [TOGGLE, FORWARD, FORWARD, LEFT, LEFT, TOGGLE, DONE],  # in room 2, but closed the door again
])
def test_red_fails_otherwise(actions):
    env, (_, reward, terminated, _, info) = play("red", actions)
    inside = env.unwrapped.agent_pos[0] > 4 and env.unwrapped.door.is_open
    assert not inside and not terminated and reward == 0 and not info["success"]


def test_green_and_blue_need_done_on_their_own_tile():
    to_green = [FORWARD, FORWARD, LEFT, FORWARD]      # (5,2) -> (7,2) -> up to (7,1)
    to_blue = [FORWARD, FORWARD, RIGHT, FORWARD]      # (5,2) -> (7,2) -> down to (7,3)
    _, (_, reward, terminated, _, _) = play("green", to_green + [DONE], agent_pos=(5, 2))
    assert terminated and reward == pytest.approx(success_reward(5))
    _, (_, reward, terminated, _, _) = play("blue", to_blue + [DONE], agent_pos=(5, 2))
    assert terminated and reward == pytest.approx(success_reward(5))
    # The other tile, or a step short, is a no-op done: the episode goes on, unrewarded.
    for task, actions in [("green", to_blue + [DONE]), ("blue", to_green + [DONE]),
                          ("green", to_green[:-1] + [DONE])]:
        _, (_, reward, terminated, _, _) = play(task, actions, agent_pos=(5, 2))
        assert not terminated and reward == 0


def test_society_tasks_need_the_door_then_the_right_tile():
    through_door = [TOGGLE, FORWARD, FORWARD, FORWARD, FORWARD]   # (3,2) -> (7,2)
    _, (_, reward, terminated, _, _) = play("pretrain", through_door + [LEFT, FORWARD, DONE])
    assert terminated and reward == pytest.approx(success_reward(8))
    _, (_, reward, terminated, _, _) = play("transfer", through_door + [RIGHT, FORWARD, DONE])
    assert terminated and reward == pytest.approx(success_reward(8))
    _, (_, reward, terminated, _, _) = play("transfer", through_door + [LEFT, FORWARD, DONE])
    assert not terminated and reward == 0
    # Without opening the door the agent cannot pass.
    env, _ = play("pretrain", [FORWARD, FORWARD, FORWARD])
    assert tuple(env.unwrapped.agent_pos) == (3, 2)


def test_the_episode_is_cut_at_50_env_steps_as_a_truncation():
    env, (_, reward, terminated, truncated, _) = play("pretrain", [LEFT] * 60)
    assert truncated and not terminated and reward == 0
    assert env.unwrapped.step_count == HORIZON


def test_frames_render_and_bad_tasks_are_named():
    env = gym.make("TwoRooms-Pretrain-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and np.asarray(frame).std() > 0
    with pytest.raises(ValueError, match="task"):
        TwoRoomsEnv("purple")
