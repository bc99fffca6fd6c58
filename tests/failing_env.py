"""A Chain that raises after `fail_after` env steps: a trial that fails mid-training, for the
search's failure reporting. Used as ``--env tests.failing_env:FailingChain-v0``."""

import gymnasium as gym

from envs.chain import ChainEnv


class FailingChainEnv(ChainEnv):
    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.fail_after = fail_after
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.fail_after is not None and self.steps > self.fail_after:
            raise RuntimeError(f"FailingChain: deliberate failure after {self.fail_after} steps")
        return super().step(action)


if "FailingChain-v0" not in gym.registry:
    gym.register(id="FailingChain-v0", entry_point=FailingChainEnv, max_episode_steps=20)
