"""A society on your own gymnasium env: any env with Discrete actions becomes an auction.

How to run this script
----------------------
``python examples/custom_env.py --stop-iters 15``

A corridor of 5 cells: action 0 steps left, action 1 right; leaving by the left end pays 0.1,
reaching the right end pays 1. Primitive k is action k; each bids for every state through 2
clones, and truthful bids are Q*: Right 0.97 ... 1.00, Left 0.1 at cell 0.

Results to expect
-----------------
One line per iteration (env steps, mean env return of the training episodes), then the greedy bids per cell. After 15
iterations (6k env steps) the training return is about 0.7, and in every cell the Right primitive
outbids the Left one (which bids about 0); Right's bids climb towards Q* from the goal backwards
(0.96 next to it, 0.4 at the start).
"""

import argparse

import gymnasium as gym
import numpy as np

from rllib_society import SocietyPPOConfig, greedy_bids


class Corridor(gym.Env):
    observation_space = gym.spaces.Discrete(5)  # one-hot encoded for the bidders
    action_space = gym.spaces.Discrete(2)  # 0: left, 1: right

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = 0
        return self.cell, {}

    def step(self, action):
        if action == 0 and self.cell == 0:  # leaving by the left door: a small sure reward
            return self.cell, 0.1, True, False, {}
        self.cell += 1 if action == 1 else -1
        done = self.cell == 4  # the right end: the big reward
        return self.cell, float(done), done, False, {}


# This process's registration: sampling stays in it (num_env_runners=0). For remote env runners,
# put the env in an importable module and pass "your_module:Corridor-v0" (gymnasium imports the
# module in each process), as the project's envs do with "envs:Chain-v0".
gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=20)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop-iters", type=int, default=15)
    args = parser.parse_args()

    config = (
        SocietyPPOConfig()
        .society(env="Corridor-v0", auction="ccv", clones=2, value_range=[0, 1])  # returns lie in [0, 1]
        .env_runners(num_env_runners=0)
        .training(lr=1e-2, train_batch_size_per_learner=400, minibatch_size=128)
    )
    algo = config.build_algo()
    for iteration in range(args.stop_iters):
        result = algo.train()
        print(f"iteration {iteration}: {result['num_env_steps_sampled_lifetime']:,.0f} env steps, "
              f"env return {result['env_runners']['society']['env_return']:.2f}")
    bids = greedy_bids({m: algo.get_module(m) for m in ("p0", "p1")}, np.eye(5)[:4])
    for cell, (left, right) in enumerate(bids):
        print(f"cell {cell}: Left bids {left:.2f}, Right bids {right:.2f}")
    algo.stop()
