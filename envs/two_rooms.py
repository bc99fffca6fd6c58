"""TwoRooms (spec section 4) on today's minigrid: two 5x5 rooms side by side (a 9x5 grid sharing
the wall column x = 4), joined by one closed, unlocked red door; in the second room a green tile
and a blue tile the agent can stand on.

Success is MiniGrid's ``done`` action under the task's condition, rewarded 1 - 0.9 * steps / 50;
any other ``done`` is a no-op, so an option that says ``done`` in the wrong place hands the state
back to the society instead of ending the episode. The 50-step cut is gymnasium's TimeLimit on the
registered ids (a truncation the algorithm sees), not MiniGrid's own time-out.

Tasks (``task=``): the primitives' ``red`` (start in room 1; ``done`` with the red door open and
the agent in room 2), ``green`` and ``blue`` (start in room 2; ``done`` on that tile), and the
society's ``pretrain`` (start in room 1; ``done`` on green) and ``transfer`` (``done`` on blue).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import DtypeObservation
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Door, Floor
from minigrid.minigrid_env import MiniGridEnv
from minigrid.wrappers import ImgObsWrapper

WIDTH, HEIGHT = 9, 5
WALL_X = 4
DOOR_POS = (WALL_X, 2)
GREEN_POS, BLUE_POS = (7, 1), (7, 3)
#: Interior cells of each room.
ROOM_1 = [(x, y) for x in range(1, WALL_X) for y in range(1, HEIGHT - 1)]
ROOM_2 = [(x, y) for x in range(WALL_X + 1, WIDTH - 1) for y in range(1, HEIGHT - 1)]
#: The algorithm's episode cut (env steps); the success reward decays over it.
HORIZON = 50
#: task -> (start room, what success needs, mission text)
TASKS = {
    "red": (1, "door", "open the red door and enter the second room"),
    "green": (2, GREEN_POS, "say done on the green tile"),
    "blue": (2, BLUE_POS, "say done on the blue tile"),
    "pretrain": (1, GREEN_POS, "say done on the green tile"),
    "transfer": (1, BLUE_POS, "say done on the blue tile"),
}


class TwoRoomsEnv(MiniGridEnv):
    """The TwoRooms grid for one task; `agent_pos`/`agent_dir` fix the start (else random in the
    task's start room)."""

    def __init__(self, task: str = "pretrain", agent_pos: tuple[int, int] | None = None,
                 agent_dir: int | None = None, **kwargs):
        if task not in TASKS:
            raise ValueError(f"task={task!r} is not allowed; task must be one of {', '.join(TASKS)}.")
        self.task = task
        self.start_room, self.goal, self.mission_text = TASKS[task]
        self.fixed_pos, self.fixed_dir = agent_pos, agent_dir
        # MiniGrid's own time-out stays out of the way: the registered TimeLimit cuts at HORIZON.
        super().__init__(mission_space=MissionSpace(mission_func=lambda: TASKS[task][2]), width=WIDTH,
                         height=HEIGHT, max_steps=10 * HORIZON, see_through_walls=False, **kwargs)

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.grid.vert_wall(WALL_X, 0, height)
        self.door = Door("red", is_open=False, is_locked=False)
        self.grid.set(*DOOR_POS, self.door)
        self.grid.set(*GREEN_POS, Floor("green"))
        self.grid.set(*BLUE_POS, Floor("blue"))
        if self.fixed_pos is not None:
            self.agent_pos = tuple(self.fixed_pos)
            self.agent_dir = self._rand_int(0, 4) if self.fixed_dir is None else self.fixed_dir
        else:
            x0 = 1 if self.start_room == 1 else WALL_X + 1
            self.place_agent(top=(x0, 1), size=(WALL_X - 1, HEIGHT - 2))
            if self.fixed_dir is not None:
                self.agent_dir = self.fixed_dir
        self.mission = self.mission_text

    def succeeded(self) -> bool:
        """Whether ``done`` now completes the task."""
        if self.goal == "door":
            return self.door.is_open and self.agent_pos[0] > WALL_X
        return tuple(self.agent_pos) == self.goal

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        success = action == self.actions.done and self.succeeded()
        info["success"] = success
        reward = 1 - 0.9 * (self.step_count / HORIZON) if success else 0.0
        return obs, reward, terminated or success, truncated, info


def make_two_rooms(task: str = "pretrain", **kwargs) -> gym.Env:
    """The registered env: the 7x7x3 egocentric symbolic image as the observation (float32, as
    RLlib's CNN encoder wants it)."""
    return DtypeObservation(ImgObsWrapper(TwoRoomsEnv(task, **kwargs)), np.float32)
