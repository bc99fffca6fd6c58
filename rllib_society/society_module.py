"""The society's `MultiRLModule`: RLlib's own PPO module (a Beta bidder) per primitive, under
module ids ``p0`` ... ``p{N-1}``, evaluated together.

MLP bidders (RLlib's default networks on vectors) are evaluated with their weights stacked: one
batched matrix product per layer for all primitives, so a forward pass costs about the same for
2 or 32 primitives. Other networks (CNNs) run one primitive after the other. Gradients reach each
module's own parameters, so every primitive stays its own RLlib policy.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.utils.annotations import override



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


class SocietyMultiRLModule(MultiRLModule):
    """The society's `MultiRLModule`: RLlib's own per-primitive modules ``p0`` ... ``p{N-1}`` (the
    stock path's, `DefaultPPOTorchRLModule` with Beta bids), evaluated together.

    When every module is an MLP of RLlib's default networks, `bid_inputs`, `values` and the
    learner's forward pass run all primitives at once with their weights stacked (one batched
    product per layer); otherwise (CNNs) one module after the other. The sub-modules, their
    parameters and their checkpoints are exactly RLlib's.
    """

    @override(MultiRLModule)
    def setup(self):
        super().setup()
        self.module_ids = sorted(self._rl_modules, key=_primitive_order)
        self._parts = _stackable_parts([self._rl_modules[m] for m in self.module_ids])

    def bid_inputs(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) bid-distribution inputs (`TorchBeta` logits) of every primitive."""
        return bid_inputs([self._rl_modules[m] for m in self.module_ids], observations, self._parts)

    def values(self, observations: torch.Tensor) -> torch.Tensor:
        """(N, B): each primitive's value of each state (full modules, the learner's)."""
        if self._parts is None or self._parts["vf"] is None:
            return torch.stack([self._rl_modules[m].compute_values({Columns.OBS: observations})
                                for m in self.module_ids])
        hidden = _stacked(self._parts["critic"] or self._parts["actor"], observations)
        return _stacked(self._parts["vf"], hidden)[..., 0]

    @override(MultiRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Every module's bid inputs and values (``vf_preds``) on its own batch: stacked when all
        modules are stackable MLPs and their batches the same size, else module by module."""
        ids = [m for m in self.module_ids if m in batch]
        stackable = self._parts is not None and self._parts["vf"] is not None
        if not stackable or len({len(batch[m][Columns.OBS]) for m in ids}) != 1:
            return {m: self._module_forward_train(m, batch[m]) for m in ids}
        index = [self.module_ids.index(m) for m in ids]
        parts = {name: None if layers is None else [layers[i] for i in index] for name, layers in self._parts.items()}
        obs = torch.stack([batch[m][Columns.OBS] for m in ids])  # (N, B, D)
        hidden = _stacked(parts["actor"], obs)
        logits = _stacked(parts["pi"], hidden)
        critic = hidden if parts["critic"] is None else _stacked(parts["critic"], obs)
        values = _stacked(parts["vf"], critic)[..., 0]
        return {m: {Columns.ACTION_DIST_INPUTS: logits[k], Columns.VF_PREDS: values[k]} for k, m in enumerate(ids)}

    def _module_forward_train(self, module_id: str, batch: dict[str, Any]) -> dict[str, Any]:
        module = self._rl_modules[module_id]
        out = module.forward_train(batch)
        out[Columns.VF_PREDS] = module.compute_values(batch, embeddings=out.get(Columns.EMBEDDINGS))
        return out


def bid_inputs(modules: list, observations: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
    """(B, N, 2) bid-distribution inputs of N primitives' RLlib modules: stacked when they are
    plain MLPs (`parts`, else found here), else one module after the other. Calls the modules'
    networks directly: RLlib's forward methods walk every submodule to switch train/eval mode."""
    parts = parts or _stackable_parts(modules)
    if parts is None:
        return torch.stack([m._forward({Columns.OBS: observations})[Columns.ACTION_DIST_INPUTS] for m in modules], dim=1)
    return _stacked(parts["pi"], _stacked(parts["actor"], observations)).transpose(0, 1)


def _primitive_order(module_id: str):
    """``p10`` after ``p9``."""
    return (len(module_id), module_id)


def _stackable_parts(modules) -> dict[str, list[torch.nn.Sequential] | None] | None:
    """Each part's layer sequences over all modules, when every module is a plain MLP of RLlib's
    default networks (biased linear layers and parameter-free activations): ``actor``,
    ``critic`` (None when the encoder is shared), ``pi``, ``vf`` (None in inference-only
    modules). Else None."""
    first = modules[0]
    shared = not hasattr(first.encoder, "actor_encoder")
    parts = {
        "actor": lambda m: m.encoder.encoder if shared else m.encoder.actor_encoder,
        "critic": None if shared else (lambda m: m.encoder.critic_encoder),
        "pi": lambda m: m.pi,
        "vf": lambda m: getattr(m, "vf", None),
    }
    layers = {}
    for name, part in parts.items():
        if part is None or part(first) is None:
            layers[name] = None
            continue
        mlps = [getattr(getattr(part(m), "net", None), "mlp", None) for m in modules]
        if not all(isinstance(mlp, torch.nn.Sequential) for mlp in mlps) or getattr(part(first), "clip_log_std", False):
            return None
        if any(len(mlp) != len(mlps[0]) for mlp in mlps):
            return None
        for layer in mlps[0]:
            linear = isinstance(layer, torch.nn.Linear) and layer.bias is not None
            if not linear and any(True for _ in layer.parameters()):
                return None
        layers[name] = mlps
    return layers
