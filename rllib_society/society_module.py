"""The society's RLModule: one RLlib PPO module (a Beta bidder) per primitive, evaluated together.

RLlib sees the whole society as one agent whose action is the vector of all bids
(`SocietyEnv`), so a step costs one trip through RLlib's connectors and episodes however many
bidders bid. Each primitive still has its own policy, value function, optimiser statistics,
gradient clip and KL coefficient (`SocietyPPOTorchLearner`); the clones of a primitive share its
policy and sample their bids independently.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override

from rllib_society.bidder import BidderCatalog, TorchBeta

#: One bidder's action space: a bid in [0, 1].
BID_SPACE = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
#: `model_config` keys of a `SocietyModule`; every other key configures each bidder's networks
#: (RLlib's `DefaultModelConfig` keys).
SOCIETY_KEYS = ("num_primitives", "clones")


class SocietyModule(TorchRLModule, ValueFunctionAPI):
    """N primitive bidders (RLlib's `DefaultPPOTorchRLModule` with Beta bids), one action.

    ``model_config``: ``num_primitives``, ``clones``, and the bidders' network keys.
    Outputs: ``action_dist_inputs`` of shape (B, 2 * N * clones), the mean logits of all bidders
    then their concentration logits (`TorchBeta` over the bid vector); `compute_values` gives
    (B, N), each primitive's value of the state.
    """

    @override(TorchRLModule)
    def setup(self):
        self.num_primitives = int(self.model_config["num_primitives"])
        self.clones = int(self.model_config["clones"])
        bidder = RLModuleSpec(
            module_class=DefaultPPOTorchRLModule,
            catalog_class=BidderCatalog,
            observation_space=self.observation_space,
            action_space=BID_SPACE,
            # Full bidders everywhere, so learner and env-runner states always match.
            inference_only=False,
            model_config={k: v for k, v in self.model_config.items() if k not in SOCIETY_KEYS},
        )
        self.bidders = torch.nn.ModuleList(bidder.build() for _ in range(self.num_primitives))

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits = [bidder._forward(batch)[Columns.ACTION_DIST_INPUTS] for bidder in self.bidders]
        return {Columns.ACTION_DIST_INPUTS: self._bid_vector_inputs(logits)}

    @override(TorchRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Also returns every primitive's value (``vf_preds``, (B, N)), sharing the encoder
        pass when ``vf_share_layers`` is on."""
        logits, values = [], []
        for bidder in self.bidders:
            out = bidder._forward_train(batch)
            logits.append(out[Columns.ACTION_DIST_INPUTS])
            shared = out[Columns.EMBEDDINGS] if not hasattr(bidder.encoder, "critic_encoder") else None
            values.append(bidder.compute_values(batch, embeddings=shared))
        return {
            Columns.ACTION_DIST_INPUTS: self._bid_vector_inputs(logits),
            Columns.VF_PREDS: torch.stack(values, dim=-1),
        }

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """(B, N): each primitive's value of the state."""
        return torch.stack([bidder.compute_values(batch) for bidder in self.bidders], dim=-1)

    def mean_bids(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, N): each primitive's mean bid, the greedy bid (spec section 3)."""
        batch = {Columns.OBS: observations}
        logits = torch.stack(
            [bidder._forward(batch)[Columns.ACTION_DIST_INPUTS] for bidder in self.bidders], dim=1
        )
        return TorchBeta.from_logits(logits).to_deterministic().loc[..., 0]

    def _bid_vector_inputs(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """[(B, 2)] * N per-primitive logits -> (B, 2 * N * clones): every bidder's mean logit,
        then every bidder's concentration logit, bidder ``k * clones + c`` using primitive k's."""
        per_bidder = torch.stack(logits, dim=1).repeat_interleave(self.clones, dim=1)
        return torch.cat([per_bidder[..., 0], per_bidder[..., 1]], dim=-1)

    @override(TorchRLModule)
    def get_exploration_action_dist_cls(self):
        return TorchBeta

    @override(TorchRLModule)
    def get_inference_action_dist_cls(self):
        return TorchBeta

    @override(TorchRLModule)
    def get_train_action_dist_cls(self):
        return TorchBeta
