"""The society's `MultiRLModule`: RLlib's own PPO module (a Beta bidder) per primitive, under
module ids ``p0`` ... ``p{N-1}``, evaluated together.

MLP bidders (RLlib's default networks on vectors) are evaluated with their weights stacked: one
batched matrix product per layer for all primitives, so a forward pass costs about the same for
2 or 32 primitives. Other networks (CNNs) run one primitive after the other. Gradients reach each
module's own parameters, so every primitive stays its own RLlib policy.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

from rllib_society.bidder import TorchBeta, TorchGaussianBid
from rllib_society.value_scale import SCALE_BUFFER, location_scale, remap_gaussian_head, remap_value_head



def _stacked(mlps: list[torch.nn.Sequential], x: torch.Tensor) -> torch.Tensor:
    """Runs N same-shaped MLPs at once: x is (B, D) (the same input for all) or (N, B, D);
    returns (N, B, out). Linear layers become one batched product of the stacked weights,
    through which gradients reach each MLP's own parameters."""
    for layers in zip(*mlps):
        if isinstance(layers[0], torch.nn.Linear):
            x = _linear(torch.stack([layer.weight for layer in layers]), torch.stack([layer.bias for layer in layers]), x)
        else:  # a parameter-free activation, the same for every primitive
            x = layers[0](x)
    return x


def _linear(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """N linear layers at once: weight (N, out, in), bias (N, out), x (B, in) or (N, B, in)."""
    return torch.baddbmm(bias.unsqueeze(1), x.expand(len(weight), *x.shape[-2:]), weight.transpose(1, 2))


class TiedMLPs:
    """N same-shaped MLPs whose linear layers keep their weights in one (N, ...) tensor per
    layer, which each layer's own parameters view (as FSDP's flat parameters do): a forward pass
    is one batched product per layer with nothing copied, and its gradient arrives stacked, for
    `scatter_grads` to hand each parameter its slice. The layers stay ordinary modules: their
    optimizers, ``load_state_dict`` and ``set_state`` write through to the stack, and their
    ``state_dict`` holds copies of their own slices only (not the whole stack).

    A parameter replaced (``load_state_dict(assign=True)``) or moved to new storage (``.to()``,
    ``swap_tensors``) no longer views its stack: `tie` finds it among all N modules (O(N)) and
    re-stacks its layer. The forward pass itself checks nothing; its owner calls `tie` first
    (`SocietyMultiRLModule.tied`)."""

    def __init__(self, mlps: list[torch.nn.Sequential]):
        self.layers = list(zip(*mlps))
        self._linear = [i for i, layers in enumerate(self.layers) if isinstance(layers[0], torch.nn.Linear)]
        self._pairs: dict[int, list[tuple[torch.Tensor, list[torch.nn.Parameter]]]] = {}
        for i in self._linear:
            for layer in self.layers[i]:
                layer.register_state_dict_post_hook(_own_copies)
        self.tie()

    def tie(self) -> bool:
        """Re-stacks each layer whose parameters no longer view its stack, in every module;
        returns whether one did."""
        changed = False
        for i in self._linear:
            now = [[layer._parameters[name] for layer in self.layers[i]] for name in ("weight", "bias")]
            pairs = self._pairs.get(i)
            if pairs is None or not all(_still_tied(stack, tied, params) for (stack, tied), params in zip(pairs, now)):
                self._pairs[i] = [(_tie(params), params) for params in now]
                changed = True
        return changed

    def __call__(self, x: torch.Tensor, index: list[int] | None = None) -> torch.Tensor:
        """The MLPs (or those at `index`) on x, (B, D) or (N, B, D); returns (N, B, out)."""
        for i, layers in enumerate(self.layers):
            if i in self._pairs:
                (weight, _), (bias, _) = self._pairs[i]
                if index is not None:
                    weight, bias = weight[index], bias[index]
                x = _linear(weight, bias, x)
            else:
                x = layers[0](x)
        return x

    def parameter_stacks(self) -> list[tuple[torch.Tensor, list[torch.nn.Parameter]]]:
        """``(stack, [the parameter of MLP k, ...])`` of every weight and bias."""
        return [pair for i in self._linear for pair in self._pairs[i]]

    def scatter_grads(self, index: list[int]) -> None:
        """Gives the parameters of the MLPs at `index` their slices of the stacked gradients."""
        for stack, params in self.parameter_stacks():
            if stack.grad is not None:
                for k in index:
                    params[k].grad = stack.grad[k]

    def zero_grads(self) -> None:
        for stack, _ in self.parameter_stacks():
            stack.grad = None


def _tie(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """A (N, ...) stack of the parameters' values, each parameter now viewing its slice."""
    stack = torch.stack([p.detach() for p in params]).requires_grad_(params[0].requires_grad)
    for k, param in enumerate(params):
        param.data = stack.data[k]
    return stack


def _still_tied(stack: torch.Tensor, tied: list[torch.nn.Parameter], params: list[torch.nn.Parameter]) -> bool:
    """Whether `params` are the parameters `stack` was tied to, each still viewing its slice."""
    return (all(a is b for a, b in zip(tied, params)) and all(p.dtype == stack.dtype for p in params)
            and slices_of(stack, params))


def _own_copies(module: torch.nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """State-dict hook of a tied layer: its entries become copies of its own slices, so that a
    saved ``state_dict`` holds this module's tensors only, not the whole (N, ...) stack. Entries
    kept as parameters (``keep_vars=True``) stay."""
    for name in ("weight", "bias"):
        value = state_dict.get(prefix + name)
        if (value is not None and not isinstance(value, torch.nn.Parameter)
                and value.untyped_storage().nbytes() > value.numel() * value.element_size()):
            state_dict[prefix + name] = value.clone()


def slices_of(stack: torch.Tensor, tensors: list, index: list[int] | None = None) -> bool:
    """Whether each tensors[j] lies where ``stack[index[j]]`` does (default: ``stack[j]``)."""
    start, step = stack.data_ptr(), stack.stride(0) * stack.element_size()
    index = range(len(tensors)) if index is None else index
    return [t.data_ptr() if t is not None else None for t in tensors] == [start + k * step for k in index]


class SocietyMultiRLModule(MultiRLModule):
    """The society's `MultiRLModule`: RLlib's own per-primitive modules ``p0`` ... ``p{N-1}`` (the
    stock path's, `DefaultPPOTorchRLModule` with Beta bids), evaluated together.

    When every module is an MLP of RLlib's default networks, `bid_inputs`, `values` and the
    learner's forward pass run all primitives at once (`TiedMLPs`: one batched product per
    layer); otherwise (CNNs) one module after the other. The sub-modules, their parameters and
    their checkpoints are exactly RLlib's.
    """

    @override(MultiRLModule)
    def setup(self):
        super().setup()
        #: Rows per state in the learner's batches (its clones); `_forward_train` checks it.
        self.rows_per_state = 1
        self._tied_calls = 0  # open `tied()` blocks
        self._stack_modules()

    def _stack_modules(self) -> None:
        """Orders the modules by primitive and stacks their networks (when all are plain MLPs)."""
        self.module_ids = sorted(self._rl_modules, key=_primitive_order)
        self._position = {m: k for k, m in enumerate(self.module_ids)}
        self._stacked_modules = [_unwrapped(self._rl_modules[m]) for m in self.module_ids]
        parts = _stackable_parts(self._stacked_modules)
        self._parts = None if parts is None else {
            name: None if mlps is None else TiedMLPs(mlps) for name, mlps in parts.items()}

    @property
    def device(self) -> torch.device:
        """Where the modules' parameters are."""
        return next(self._stacked_modules[0].parameters()).device

    def tie(self) -> None:
        """Makes the stacked forward use every module's current parameters, whatever changed
        them (`TiedMLPs.tie`), and the current modules (``add_module``, ``remove_module``):
        O(N) checks."""
        if len(self._rl_modules) != len(self._stacked_modules) or any(
                _unwrapped(self._rl_modules.get(m)) is not module
                for m, module in zip(self.module_ids, self._stacked_modules)):
            self._stack_modules()
        for part in (self._parts or {}).values():
            if part is not None:
                part.tie()

    @contextmanager
    def tied(self):
        """A block of forward passes (a `sample()` call, a learner update) that checks the
        modules' parameters once, at its start (`tie`), instead of at every pass: nothing inside
        it may replace a parameter. Outside such a block, every forward pass checks."""
        self.tie()
        self._tied_calls += 1
        try:
            yield self
        finally:
            self._tied_calls -= 1

    def _stacked_parts(self) -> dict[str, TiedMLPs | None] | None:
        """The stacked parts, tied to the current parameters (None: modules run one by one)."""
        if self._parts is not None and not self._tied_calls:
            self.tie()
        return self._parts

    def value_scale(self) -> tuple[float, float] | None:
        """(mu, sigma) of the society's values when bids lie on the real line, else None
        (`value_scale_of`)."""
        return value_scale_of(self._stacked_modules[0])

    def value_moments(self) -> torch.Tensor:
        """Bids on the real line: the society's value statistics (`value_scale.SCALE_BUFFER`)."""
        return getattr(self._stacked_modules[0].pi, SCALE_BUFFER)

    @torch.no_grad()
    def set_value_moments(self, moments: torch.Tensor) -> None:
        """Bids on the real line: sets every module's value statistics to `moments` and re-maps
        its bid head and critic so that the values its bids stand for, and its value
        predictions in env units, stay what they were (`value_scale.remap_gaussian_head`)."""
        old, new = self.value_scale(), location_scale(moments)
        for module in self._stacked_modules:
            remap_gaussian_head(_last_linear(module.pi), old, new)
            if getattr(module, "vf", None) is not None:
                remap_value_head(_last_linear(module.vf), old[1], new[1])
            getattr(module.pi, SCALE_BUFFER).copy_(moments)

    def bid_inputs(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) bid-distribution inputs (`TorchBeta` or `TorchGaussianBid` logits) of every primitive."""
        parts = self._stacked_parts()
        if parts is None:
            return bid_inputs([self._rl_modules[m] for m in self.module_ids], observations)
        return parts["pi"](parts["actor"](observations)).transpose(0, 1)

    def state_values(self, observations: torch.Tensor) -> torch.Tensor:
        """(N, B): each primitive's value of each state (full modules, the learner's)."""
        parts = self._stacked_parts()
        if parts is None or parts["vf"] is None:
            return torch.stack([self._rl_modules[m].compute_values({Columns.OBS: observations})
                                for m in self.module_ids])
        hidden = (parts["critic"] or parts["actor"])(observations)
        return parts["vf"](hidden)[..., 0]

    @override(MultiRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        """Every module's bid inputs and values (``vf_preds``) on its own batch: stacked when all
        modules are stackable MLPs and their batches the same size, else module by module."""
        ids = [m for m in self.module_ids if m in batch]
        parts = self._stacked_parts()
        stackable = parts is not None and parts["vf"] is not None
        if not stackable or len({len(batch[m][Columns.OBS]) for m in ids}) != 1:
            return {m: self._module_forward_train(m, batch[m]) for m in ids}
        index = None if len(ids) == len(self.module_ids) else [self._position[m] for m in ids]
        obs = [batch[m][Columns.OBS] for m in ids]
        obs = obs[0] if all(o is obs[0] for o in obs) else torch.stack(obs)  # (B, D) or (N, B, D)
        repeat = self._repeated_rows(obs)
        if repeat > 1:  # each state once; its rows get the same outputs (and sum their gradients)
            obs = obs[::repeat].contiguous()
        hidden = parts["actor"](obs, index)
        logits = parts["pi"](hidden, index)
        critic = hidden if parts["critic"] is None else parts["critic"](obs, index)
        # A tensor of its own, not a view of (N, B, 1): each module's values[k] is then a slice
        # of it, which the learner restacks in one step (`_stacked_column`); stacked anew, the
        # backward pass would fill an (N, B) gradient for every module: quadratic in N.
        values = parts["vf"](critic, index)[..., 0].clone()
        if repeat > 1:  # (repeat_interleave returns a view of its copy: restacking needs its own tensor)
            logits, values = (t.repeat_interleave(repeat, dim=1).clone() for t in (logits, values))
        return {m: {Columns.ACTION_DIST_INPUTS: logits[k], Columns.VF_PREDS: values[k]} for k, m in enumerate(ids)}

    def _repeated_rows(self, obs: torch.Tensor) -> int:
        """`rows_per_state` when the shared observations come in runs of that many equal rows
        (an auction's clones, as the learner's minibatches keep them), else 1."""
        r = self.rows_per_state
        if r > 1 and obs.dim() == 2 and len(obs) % r == 0 and torch.equal(obs, obs[::r].repeat_interleave(r, dim=0)):
            return r
        return 1

    def scatter_grads(self, module_ids) -> None:
        """After a backward pass through the stacked forward: each of these modules' parameters
        gets its slice of the stacked gradients (``param.grad``, as a per-module pass gives)."""
        if self._parts is not None:
            index = [self._position[m] for m in module_ids]
            for part in self._parts.values():
                if part is not None:
                    part.scatter_grads(index)

    def parameter_stacks(self) -> list[tuple[torch.Tensor, list[torch.nn.Parameter]]]:
        """``(stack, [module k's parameter, ...])`` of every stacked weight and bias, modules in
        `module_ids` order (`TiedMLPs`); empty when the modules run one after the other."""
        return [pair for part in (self._parts or {}).values() if part is not None for pair in part.parameter_stacks()]

    def zero_grads(self) -> None:
        """Resets the stacked gradients (the learner resets the parameters' own)."""
        for part in (self._parts or {}).values():
            if part is not None:
                part.zero_grads()

    def _module_forward_train(self, module_id: str, batch: dict[str, Any]) -> dict[str, Any]:
        module = self._rl_modules[module_id]
        out = module.forward_train(batch)
        out[Columns.VF_PREDS] = module.compute_values(batch, embeddings=out.get(Columns.EMBEDDINGS))
        return out


def bid_inputs(modules: list, observations: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) bid-distribution inputs of N primitives' RLlib modules: stacked when they are
    plain MLPs, else one module after the other. Calls the modules' networks directly: RLlib's
    forward methods walk every submodule to switch train/eval mode."""
    parts = _stackable_parts(modules)
    if parts is None:
        return torch.stack([m._forward({Columns.OBS: observations})[Columns.ACTION_DIST_INPUTS] for m in modules], dim=1)
    return _stacked(parts["pi"], _stacked(parts["actor"], observations)).transpose(0, 1)


def greedy_bids(modules: dict[str, RLModule], observations: np.ndarray) -> np.ndarray:
    """(B, N) mean bid of each of N primitives for B observations: the greedy society's bids
    (every bidder bids its mean, spec section 3; in env units for bids on the real line), from
    modules ``{"p0": module, ...}`` in primitive order, e.g. `load_modules` of a checkpoint."""
    modules = list(modules.values())
    scale = value_scale_of(modules[0])
    with torch.no_grad():
        inputs = bid_inputs(modules, torch.as_tensor(observations, dtype=torch.float32))
        means = bid_distribution_of(scale).from_logits(inputs).to_deterministic().loc[..., 0].numpy()
    return means if scale is None else scale[0] + scale[1] * means


def value_scale_of(module: RLModule) -> tuple[float, float] | None:
    """(mu, sigma) of the society's values that a module with bids on the real line holds
    (``value_range: adaptive``: its bid b stands for the value mu + sigma * b), else None."""
    moments = getattr(_unwrapped(module).pi, SCALE_BUFFER, None)
    return None if moments is None else location_scale(moments)


def _last_linear(head: torch.nn.Module) -> torch.nn.Linear:
    """The output layer of one of RLlib's MLP heads."""
    return [layer for layer in head.net.mlp if isinstance(layer, torch.nn.Linear)][-1]


def bid_distribution_of(scale: tuple[float, float] | None) -> type[TorchBeta] | type[TorchGaussianBid]:
    """The bid distribution of modules whose `value_scale_of` is `scale`."""
    return TorchBeta if scale is None else TorchGaussianBid


def _unwrapped(module):
    """The RLModule itself, also inside RLlib's DDP wrapper (``num_learners > 1``)."""
    return module.unwrapped() if module is not None else None


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
