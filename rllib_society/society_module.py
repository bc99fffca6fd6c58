"""The society's RLModule: one RLlib PPO module (a Beta bidder) per primitive, evaluated together.

RLlib sees the whole society as one agent whose action is the vector of all bids
(`AuctionEnv`), so a step costs one trip through RLlib's connectors and episodes however many
bidders bid. Each primitive still has its own policy, value function, optimiser statistics,
gradient clip and KL coefficient (`SocietyPPOTorchLearner`); the clones of a primitive share its
policy and sample their bids independently.

MLP bidders (RLlib's default networks on vectors) are evaluated with their weights stacked: one
batched matrix product per layer for all primitives, so a forward pass costs about the same for
2 or 32 primitives. Other networks (CNNs) run one primitive after the other.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override

from rllib_society.bidder import BidderCatalog, TorchBeta

#: One bidder's action space: a bid in [0, 1].
BID_SPACE = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
#: Layers that behave differently in train and eval mode.
_MODE_DEPENDENT = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._BatchNorm)
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
        bidder_config = {k: v for k, v in self.model_config.items() if k not in SOCIETY_KEYS}
        self.bidders = torch.nn.ModuleList(
            DefaultPPOTorchRLModule(
                observation_space=self.observation_space,
                action_space=BID_SPACE,
                # Full bidders everywhere, so learner and env-runner states always match.
                inference_only=False,
                model_config=bidder_config,
                catalog_class=BidderCatalog,
            )
            for _ in range(self.num_primitives)
        )
        self._mlps = _mlp_layers(self.bidders)
        self._mode_matters = any(isinstance(m, _MODE_DEPENDENT) for m in self.modules())

    @override(TorchRLModule)
    def train(self, mode: bool = True):
        """RLlib switches modes around every forward pass, and each switch walks every submodule
        of every bidder (most of a sampling step's time with 32 primitives). RLlib's default
        networks have no dropout or batch norm, so then only the flag changes."""
        if self._mode_matters:
            return super().train(mode)
        self.training = mode
        return self

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits, _ = self._logits_and_values(batch, values=False)
        return {Columns.ACTION_DIST_INPUTS: self._bid_vector_inputs(logits)}

    @override(TorchRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Also returns every primitive's value (``vf_preds``, (B, N))."""
        logits, values = self._logits_and_values(batch, values=True)
        return {Columns.ACTION_DIST_INPUTS: self._bid_vector_inputs(logits), Columns.VF_PREDS: values}

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """(B, N): each primitive's value of the state."""
        if self._mlps is None:
            return torch.stack([bidder.compute_values(batch) for bidder in self.bidders], dim=-1)
        return self._stacked_values(batch[Columns.OBS])

    def mean_bids(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, N): each primitive's mean bid, the greedy bid (spec section 3)."""
        logits, _ = self._logits_and_values({Columns.OBS: observations}, values=False)
        return TorchBeta.from_logits(logits).to_deterministic().loc[..., 0]

    def _logits_and_values(self, batch, values: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, N, 2) policy outputs and, if asked, (B, N) values of all primitives, sharing the
        encoder pass when ``vf_share_layers`` is on."""
        if self._mlps is None:
            logits, vf = [], []
            for bidder in self.bidders:
                out = bidder._forward_train(batch) if values else bidder._forward(batch)
                logits.append(out[Columns.ACTION_DIST_INPUTS])
                if values:
                    shared = out[Columns.EMBEDDINGS] if self._shares_encoder(bidder) else None
                    vf.append(bidder.compute_values(batch, embeddings=shared))
            return torch.stack(logits, dim=1), torch.stack(vf, dim=-1) if values else None
        hidden = _stacked(self._mlps["actor"], batch[Columns.OBS])
        logits = _stacked(self._mlps["pi"], hidden).transpose(0, 1)
        if not values:
            return logits, None
        return logits, self._stacked_values(batch[Columns.OBS], actor_hidden=hidden)

    def _stacked_values(self, obs: torch.Tensor, actor_hidden: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) values through the stacked MLPs; a shared encoder reuses `actor_hidden`."""
        if self._mlps["critic"] is not None:
            hidden = _stacked(self._mlps["critic"], obs)
        else:
            hidden = actor_hidden if actor_hidden is not None else _stacked(self._mlps["actor"], obs)
        return _stacked(self._mlps["vf"], hidden)[..., 0].T

    @staticmethod
    def _shares_encoder(bidder) -> bool:
        return not hasattr(bidder.encoder, "critic_encoder")

    def _bid_vector_inputs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) per-primitive logits -> (B, 2 * N * clones): every bidder's mean logit,
        then every bidder's concentration logit, bidder ``k * clones + c`` using primitive k's."""
        per_bidder = logits.repeat_interleave(self.clones, dim=1)
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


def _mlp_layers(bidders) -> dict[str, list[torch.nn.Sequential] | None] | None:
    """Each part's layer sequences over all bidders (``actor``, ``critic`` (None when the
    encoder is shared), ``pi``, ``vf``), when every part is a plain MLP of RLlib's default
    networks: biased linear layers and parameter-free activations. Else None."""
    shared = SocietyModule._shares_encoder(bidders[0])
    parts = {
        "actor": lambda b: b.encoder.encoder if shared else b.encoder.actor_encoder,
        "critic": None if shared else (lambda b: b.encoder.critic_encoder),
        "pi": lambda b: b.pi,
        "vf": lambda b: b.vf,
    }
    layers = {}
    for name, part in parts.items():
        if part is None:
            layers[name] = None
            continue
        mlps = [getattr(getattr(part(b), "net", None), "mlp", None) for b in bidders]
        if not all(isinstance(m, torch.nn.Sequential) for m in mlps) or getattr(part(bidders[0]), "clip_log_std", False):
            return None
        for layer in mlps[0]:
            linear = isinstance(layer, torch.nn.Linear) and layer.bias is not None
            if not linear and any(True for _ in layer.parameters()):
                return None
        layers[name] = mlps
    return layers


def _stacked(mlps: list[torch.nn.Sequential], x: torch.Tensor) -> torch.Tensor:
    """Runs N same-shaped MLPs at once: x is (B, D) (the same input for all) or (N, B, D);
    returns (N, B, out). Linear layers become one batched product of the stacked weights,
    through which gradients reach each MLP's own parameters."""
    for layers in zip(*mlps):
        if isinstance(layers[0], torch.nn.Linear):
            weight = torch.stack([layer.weight for layer in layers]).transpose(1, 2)
            bias = torch.stack([layer.bias for layer in layers]).unsqueeze(1)
            x = torch.baddbmm(bias, x.expand(len(layers), *x.shape[-2:]), weight)
        else:  # a parameter-free activation, the same for every primitive
            x = layers[0](x)
    return x
