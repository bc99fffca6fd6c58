"""Learner connector piece that trains every bid on its exact auction utility.

u_t needs the bids of step t+1, which RLlib has not seen when it closes the transition of step t;
this piece computes the utilities over whole episode chunks on the learner, from the auction
record `AuctionEnv` writes into every step's info, and from them each bidder's advantage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.numpy import convert_to_numpy

from rllib_society.auction import AUCTIONS, episode_utilities
from rllib_society.auction_env import AUCTION_INFO

#: Set by PPO's `AddOneTsToEpisodesAndTruncate` once it has appended one artificial step.
_ADDED_ONE_TS = "_added_loss_mask_for_valid_episode_ts"
#: Batch column (B, bidders): True where a bidder's sample enters its loss.
BIDDER_MASK = "bidder_mask"


class SocietyAdvantages(ConnectorV2):
    """Writes each bidder's advantage u_t - V_k(s_t), value target u_t and loss mask.

    Pipeline: the PPO learner connector, last, in place of RLlib's `GeneralAdvantageEstimation`
    (bidders are memoryless: a bid's utility already holds the discounted lookahead, spec
    section 2). With ``standardize``, each primitive's advantages are standardized over its
    bidders' samples, as GAE does per policy.
    Reads: the auction record in each step's infos (bids, active bidders, reward, discount,
    last), and the society module's values.
    Writes: ``advantages``, ``value_targets`` and `BIDDER_MASK`, each (B, bidders). A bidder
    sitting out is masked; so is the last auction of a chunk cut before its episode ended (its
    utility needs the next chunk's bids), and the artificial step PPO appends.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *,
                 auction: str, standardize: bool = True):
        super().__init__(input_observation_space, input_action_space)
        if auction not in AUCTIONS:
            raise ValueError(f"Unknown auction {auction!r}; allowed: {', '.join(AUCTIONS)}.")
        self.auction = auction
        self.standardize = standardize

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, shared_data=None, **kwargs):
        extra_steps = 1 if (shared_data or {}).get(_ADDED_ONE_TS) else 0
        (module_id, module_batch), = batch.items()  # the society is one RLlib module
        module = rl_module[module_id]
        chunks = [
            self._chunk_utilities(episode, extra_steps, module.num_primitives * module.clones)
            for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False)
        ]
        utilities = np.concatenate([u for u, _ in chunks])
        mask = np.concatenate([m for _, m in chunks])
        values = np.repeat(convert_to_numpy(module.compute_values(module_batch)), module.clones, axis=1)
        advantages = utilities - values
        if self.standardize:
            advantages = _standardize_per_primitive(advantages, mask, module.clones)
        device = next(module.parameters()).device
        module_batch.update({
            Postprocessing.ADVANTAGES: torch.as_tensor(advantages, dtype=torch.float32, device=device),
            Postprocessing.VALUE_TARGETS: torch.as_tensor(utilities, dtype=torch.float32, device=device),
            BIDDER_MASK: torch.as_tensor(mask, device=device),
        })
        return batch

    def _chunk_utilities(self, episode, extra_steps: int, bidders: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, bidders) utilities and loss mask of one episode chunk."""
        rows = len(episode)
        steps = rows - extra_steps
        utilities = np.zeros((rows, bidders))
        mask = np.zeros((rows, bidders), dtype=bool)
        if steps <= 0:
            return utilities, mask
        # Info t + 1 is the one returned with the observation after auction t.
        records = [info[AUCTION_INFO] for info in episode.get_infos(slice(1, steps + 1))]
        active = np.stack([r["active"] for r in records])
        utilities[:steps] = episode_utilities(
            np.stack([r["bids"] for r in records]),
            np.array([r["reward"] for r in records]),
            np.array([r["discount"] for r in records]),
            self.auction,
            active,
        )
        mask[:steps] = active
        if not records[-1]["last"]:
            mask[steps - 1] = False
        return utilities, mask


def _standardize_per_primitive(advantages: np.ndarray, mask: np.ndarray, clones: int) -> np.ndarray:
    """Standardizes each primitive's advantages (its `clones` columns) over its masked-in
    samples, with GAE's floor of 1e-4 on the standard deviation."""
    result = advantages.copy()
    for first in range(0, advantages.shape[1], clones):
        columns = slice(first, first + clones)
        valid = advantages[:, columns][mask[:, columns]]
        if valid.size:
            result[:, columns] = (advantages[:, columns] - valid.mean()) / max(1e-4, valid.std())
    return result
