"""The society as an RLlib `MultiAgentEnv`: one agent id per bidder and step parity, each rewarded
with its exact auction utility (spec section 2).

The utility u_t of a bid made at auction t needs the bids of auction t + 1. RLlib closes an
agent's transition when the agent next gets an observation, and sums the rewards an agent gets
in between into the action it took (a "hanging" action, carried across chunk cuts). So each
bidder (clone c of primitive k) has two agent ids, ``p{k}_c{c}_even`` and ``p{k}_c{c}_odd``: the
ids of auction t's parity bid at auction t, and in the step of auction t + 1 the env gives them
their next observation with u_t. The last auction gives every id that bid its final observation
and utility. Nothing waits for a later chunk to be computed, so no auction is ever dropped.

A transition's next observation is the state two auctions on: right for memoryless bidders,
which PPO trains with gamma 0 (a bid's utility already holds the discounted lookahead), as
`multi_agent_ppo_config` does. Both ids of a bidder map to its primitive's module ``p{k}``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from rllib_society.auction_env import AUCTION_INFO, AuctionEnv, primitive_name, record_utilities

#: One bidder's action: a bid in [0, 1].
BID_SPACE = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
#: One bidder's action with ``value_range: adaptive``: a bid on the real line.
REAL_BID_SPACE = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)


def bid_space(adaptive: bool) -> gym.spaces.Box:
    """One bidder's action space: `REAL_BID_SPACE` when the value range is adaptive, else `BID_SPACE`."""
    return REAL_BID_SPACE if adaptive else BID_SPACE
#: The two agent ids of a bidder, by the parity of the auctions it bids at.
PARITIES = ("even", "odd")


def bidder_agent_id(primitive: int, clone: int, parity: int) -> str:
    """``p{k}_c{c}_{even|odd}``: clone c of primitive k at auctions of that parity."""
    return f"{primitive_name(primitive)}_c{clone}_{PARITIES[parity]}"


def policy_mapping_fn(agent_id: str, episode=None, **kwargs) -> str:
    """Maps every id of a primitive's clones to the primitive's module ``p{k}``."""
    return agent_id.split("_", 1)[0]


class SocietyEnv(MultiAgentEnv):
    """A gymnasium env with Discrete actions, run as an auction among RLlib agents.

    Config: the keys of `AuctionEnv` (``env``, ``env_config``, ``auction``, ``clones``,
    ``dropout``, ``gamma``, ``value_range``, ``options``, ...). Each agent observes the wrapped
    env's state (Discrete states one-hot) and acts with a bid in [0, 1]; bidders sitting out an
    episode get no observation in it. Rewards are the exact utilities of ``auction``. Each
    agent's info holds the auction record of the step (`AUCTION_INFO`).
    """

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.auction_env = AuctionEnv(config)
        self.auction = self.auction_env.config["auction"]
        n, clones = self.auction_env.num_primitives, self.auction_env.clones
        #: ids[parity][bidder], bidder k * clones + c being clone c of primitive k.
        self.ids = [[bidder_agent_id(k, c, parity) for k in range(n) for c in range(clones)]
                    for parity in (0, 1)]
        self.possible_agents = self.ids[0] + self.ids[1]
        self.agents = []
        observation_space = self.auction_env.observation_space
        self.observation_spaces = {agent: observation_space for agent in self.possible_agents}
        self.action_spaces = {agent: bid_space(self.auction_env.adaptive) for agent in self.possible_agents}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode: the active bidders of the first auction's parity observe the state."""
        observation, _ = self.auction_env.reset(seed=seed, options=options)
        self._bidders = np.flatnonzero(self.auction_env.active)
        self.agents = [ids[b] for ids in self.ids for b in self._bidders]
        self._previous: dict[str, Any] | None = None
        return {self.ids[0][b]: observation for b in self._bidders}, {}

    def step(self, action_dict: dict[str, Any]):
        """One auction from the bids of this parity's ids; pays the previous auction's bidders their
        utilities (and this one's too when the episode ends)."""
        parity = 0 if self._previous is None else (self._previous["step"] + 1) % 2
        bids = np.full(self.auction_env.num_bidders, np.nan)
        for b in self._bidders:
            agent = self.ids[parity][b]
            if agent not in action_dict:
                raise KeyError(f"no bid from agent {agent!r}, which got this step's observation.")
            bids[b] = float(np.asarray(action_dict[agent]).reshape(-1)[0])
        observation, _, terminated, truncated, info = self.auction_env.step(bids)
        record = info[AUCTION_INFO]

        # Utilities of the previous auction (its lookahead is this one) and, if the episode
        # ends here, of this one (lookahead 0).
        utilities = record_utilities([r for r in (self._previous, record) if r is not None], self.auction,
                                     self.auction_env.clones)
        receivers = []  # (ids, their utilities or None): who gets this step's observation
        if self._previous is not None or not record["last"]:
            # The other parity: paid for the previous auction (none at step 0), bids next.
            receivers.append((self.ids[1 - parity], utilities[0] if self._previous is not None else None))
        if record["last"]:
            receivers.append((self.ids[parity], utilities[-1]))

        observations, rewards, infos = {}, {}, {}
        for ids, utility in receivers:
            for b in self._bidders:
                observations[ids[b]] = observation
                infos[ids[b]] = {AUCTION_INFO: record}
                if utility is not None:
                    rewards[ids[b]] = float(utility[b])
        self._previous = record
        return observations, rewards, {"__all__": terminated}, {"__all__": truncated}, infos
