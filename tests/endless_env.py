"""An env that never ends and has no time limit: whatever the society does, its greedy episode
goes on forever. Used as ``--env tests.endless_env:Endless-v0`` to check that the evaluation
cuts it (``eval_max_steps``) and training goes on."""

import gymnasium as gym


class EndlessEnv(gym.Env):
    """Three states in a ring; action a moves a + 1 steps round it, reward 0.1 for action 1."""

    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = 0
        return self.state, {}

    def step(self, action):
        self.state = (self.state + int(action) + 1) % 3
        return self.state, 0.1 * int(action), False, False, {}


if "Endless-v0" not in gym.registry:
    gym.register(id="Endless-v0", entry_point=EndlessEnv)
