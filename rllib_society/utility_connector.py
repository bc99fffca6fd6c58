"""Learner connector piece that trains every bid on its exact auction utility.

u_t needs the bids of step t+1, which RLlib has not seen when it closes the transition of step t;
this piece recomputes the utilities over whole episode chunks on the learner, from the auction
record `SocietyEnv` writes into the agents' infos, before rewards are batched.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.utils.annotations import override

from rllib_society.auction import AUCTIONS, episode_utilities
from rllib_society.society_env import AUCTION_INFO

#: Set by PPO's `AddOneTsToEpisodesAndTruncate` once it has appended one artificial step.
_ADDED_ONE_TS = "_added_loss_mask_for_valid_episode_ts"


class AuctionUtilityConnector(ConnectorV2):
    """Overwrites each agent's rewards with its auction utility (`episode_utilities`).

    Pipeline: the PPO learner connector, right after `AddOneTsToEpisodesAndTruncate` and before
    `AddColumnsFromEpisodesToTrainBatch` reads the rewards (see `SocietyPPOTorchLearner`).
    Reads: the auction record in each step's infos (bids, active agents, reward, discount, last).
    Writes: every agent's rewards in the episodes. A chunk cut before its episode ended cannot
    know its last auction's utility (the next bids are in the next chunk), so that step is masked
    out of the loss.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, auction: str):
        super().__init__(input_observation_space, input_action_space)
        if auction not in AUCTIONS:
            raise ValueError(f"Unknown auction {auction!r}; allowed: {', '.join(AUCTIONS)}.")
        self.auction = auction

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, shared_data=None, **kwargs):
        extra_steps = 1 if (shared_data or {}).get(_ADDED_ONE_TS) else 0
        for episode in episodes:
            agent_episodes = list(episode.agent_episodes.values())
            steps = len(agent_episodes[0]) - extra_steps
            if steps <= 0:
                continue
            # Info t + 1 is the one returned with the observation after auction t.
            records = [info[AUCTION_INFO] for info in agent_episodes[0].get_infos(slice(1, steps + 1))]
            utilities = episode_utilities(
                np.stack([r["bids"] for r in records]),
                np.array([r["reward"] for r in records]),
                np.array([r["discount"] for r in records]),
                self.auction,
                np.stack([r["active"] for r in records]),
            )
            columns = {agent: i for i, agent in enumerate(records[0]["agents"])}
            for agent_episode in agent_episodes:
                with warnings.catch_warnings():  # gymnasium warns on every float32 cast
                    warnings.simplefilter("ignore")
                    agent_episode.set_rewards(
                        new_data=utilities[:, columns[agent_episode.agent_id]].astype(np.float32),
                        at_indices=slice(0, steps),
                    )
                if not records[-1]["last"]:
                    key = (episode.id_, agent_episode.agent_id, agent_episode.module_id)
                    batch[Columns.LOSS_MASK][key][steps - 1] = False
        return batch
