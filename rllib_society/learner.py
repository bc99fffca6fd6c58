"""The fast path's PPO learner: every primitive's PPO update, batched over the primitives.

Each primitive is its own RLlib module with what RLlib gives a module: its loss is the masked mean
over its own clones' samples, its gradients are clipped by their own norm, and it has its own
optimizer, adaptive KL coefficient, schedules and per-module overrides.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import torch
from torch.optim.adam import adam
from ray.rllib.algorithms.ppo.ppo import LEARNER_RESULTS_KL_KEY, LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import LearnerConnectorPipeline
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import DEFAULT_OPTIMIZER, ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core import ALL_MODULES
from ray.rllib.core.learner.training_data import TrainingData
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    MODULE_TRAIN_BATCH_SIZE_MEAN,
    NUM_ENV_STEPS_TRAINED,
    NUM_ENV_STEPS_TRAINED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    WEIGHTS_SEQ_NO,
)

from rllib_society.bidder import TorchBeta, TorchGaussianBid
from rllib_society.chunk_connector import SCORED_VALUES, AuctionChunksToBatch, trained_row_entries
from rllib_society.exploration import exploration_settings
from rllib_society.rows import TRAINED, RowEntry, RowLedger
from rllib_society.society_module import slices_of
from rllib_society.value_range import is_adaptive
from rllib_society.value_scale import SCALE_DECAY, updated_moments, winner_values


class SocietyMinibatches:
    """Epochs of minibatches of `minibatch_size` rows over a `MultiAgentBatch` whose module
    batches all have the same rows (`AuctionChunksToBatch`): each epoch draws one permutation
    and slices every column of every module with it at once. Rows stay in their groups of
    `group` (an auction's clones, which bid on the same state), so the stacked forward pass
    can run each state once (`SocietyMultiRLModule`); minibatches hold whole groups. The last
    minibatch of an epoch may be smaller (RLlib's iterator wraps around instead).

    With `num_total_minibatches` (several learners: the count that keeps them in step) it
    yields exactly that many minibatches, starting new epochs as needed, whatever its rows.
    `seen` counts how often each row was in a minibatch."""

    def __init__(self, batch: MultiAgentBatch, num_epochs: int, minibatch_size: int | None, shuffle: bool,
                 group: int = 1, num_total_minibatches: int = 0):
        self.module_ids = list(batch.policy_batches)
        first = batch.policy_batches[self.module_ids[0]]
        self.columns, self.shared = {}, {}  # (modules, rows, ...) columns; columns all modules share
        for column, values in first.items():
            per_module = [batch.policy_batches[m][column] for m in self.module_ids]
            if all(v is values for v in per_module):
                self.shared[column] = values
            else:
                self.columns[column] = torch.stack(per_module)
        self.rows = len(first)
        self.num_epochs, self.shuffle, self.num_total_minibatches = num_epochs, shuffle, num_total_minibatches
        self.group = group if group > 1 and self.rows % group == 0 else 1
        size = minibatch_size or self.rows
        self.minibatch_size = max(self.group, size - size % self.group)
        self.seen = torch.zeros(self.rows, dtype=torch.int64)
        self.device = next(iter({**self.columns, **self.shared}.values())).device

    def __len__(self) -> int:
        """Minibatches it yields."""
        if self.num_total_minibatches:
            return self.num_total_minibatches
        return self.num_epochs * -(-self.rows // self.minibatch_size)

    def __iter__(self):
        groups, count = self.rows // self.group, 0
        for epoch in itertools.count():
            if (epoch >= self.num_epochs) if not self.num_total_minibatches else (count >= self.num_total_minibatches):
                return
            order = torch.randperm(groups) if self.shuffle else torch.arange(groups)
            order = (order[:, None] * self.group + torch.arange(self.group)).reshape(-1)
            for start in range(0, self.rows, self.minibatch_size):
                if self.num_total_minibatches and count >= self.num_total_minibatches:
                    return
                count += 1
                rows = order[start:start + self.minibatch_size]
                self.seen[rows] += 1
                rows = rows.to(self.device)
                # index_select: 2-3x faster than values[:, rows] on (1,024, 4,000) columns
                sliced = {column: torch.index_select(values, 1, rows) for column, values in self.columns.items()}
                shared = {column: values[rows] for column, values in self.shared.items()}
                yield MultiAgentBatch(
                    {m: _module_rows({**shared, **{column: values[k] for column, values in sliced.items()}}, len(rows))
                     for k, m in enumerate(self.module_ids)},
                    env_steps=len(rows),
                )


#: The attributes `SampleBatch.__init__` gives a batch of plain tensor columns (no sequences).
_SAMPLE_BATCH_STATE = dict(vars(SampleBatch({"x": torch.zeros(1)})), count=0)
_SAMPLE_BATCH_CONTAINERS = [k for k, v in _SAMPLE_BATCH_STATE.items() if isinstance(v, (set, dict, list))]


def _module_rows(columns: dict[str, torch.Tensor], rows: int) -> SampleBatch:
    """The `SampleBatch` of one module's minibatch rows, as ``SampleBatch(columns)`` builds it,
    without its per-column checks (~40 us a module and minibatch: 1.5 s of an update at 1,024
    primitives). Every column is a tensor of `rows` rows."""
    batch = SampleBatch.__new__(SampleBatch)
    batch.__dict__.update(_SAMPLE_BATCH_STATE, count=rows)
    for name in _SAMPLE_BATCH_CONTAINERS:  # each batch its own (empty) bookkeeping sets and lists
        setattr(batch, name, type(_SAMPLE_BATCH_STATE[name])())
    dict.update(batch, columns)
    return batch


class SocietyPPOLearner(PPOTorchLearner):
    """RLlib's PPO learner for the fast path: one module per primitive, as RLlib's, with RLlib's
    per-module optimizer, KL coefficient, schedules and overrides, but every step batched over
    the modules: the batch comes from `AuctionChunksToBatch`, the forward pass is stacked
    (`SocietyMultiRLModule`), and PPO's loss, the non-finite check and the per-module gradient
    clip run as (modules, ...) tensor operations. Reads ``standardize_advantages`` from
    ``config.learner_config_dict``."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        exploration = exploration_settings(self.config.env_config.get("exploration"))
        self._learner_connector = LearnerConnectorPipeline(connectors=[AuctionChunksToBatch(
            standardize=self.config.learner_config_dict.get("standardize_advantages", True),
            scored_baseline=exploration["baseline"], mean_fit=exploration["scored_loss"] == "mean")])
        # The connector gives each auction's state to its `clones` rows in a row.
        self.module.rows_per_state = int(self.config.env_config.get("clones", 1))
        self._loss_stats = self._grad_norms = None
        self._steps_trained, self._minibatches = {}, 0
        self._update_rows = None  # (chunks, minibatches) of the running update
        self._trained_rows = []  # (chunks, rows seen, modules trained) of the last update, or its entries
        self._trained: list[int] = []  # indices of the modules the last backward pass trained
        self._stacked_gradients = None  # (gradients, their values, parameter stacks) of the last pass
        self._adam_stacks: dict[int, tuple[torch.Tensor, ...]] = {}  # stacked Adam state (_ADAM_STATE)
        self._step_counters: list[torch.Tensor] = []
        ledger = getattr(self.config, "row_ledger", None)
        self._ledger = RowLedger(ledger, TRAINED) if ledger else None
        #: Bids on the real line: their distribution, and a value scale to keep (`value_scale`).
        self._adaptive = is_adaptive(self.config.env_config.get("value_range"))
        self._bid_distribution = TorchGaussianBid if self._adaptive else TorchBeta

    @override(PPOTorchLearner)
    def update(self, batch=None, batches=None, batch_refs=None, episodes=None, episodes_refs=None,
               data_iterators=None, training_data=None, *, timesteps=None, **kwargs):
        """RLlib's update, with the modules' parameters checked once at its start
        (`SocietyMultiRLModule.tied`). Chunks without rows (every auction still open in its
        env runner) train nothing: their auctions are counted, and RLlib's loop, which fails
        on an empty batch, is skipped. An update that fails counts nothing: its counts start
        afresh here and are logged only once it has trained (`_log_trained`)."""
        self._steps_trained, self._minibatches, self._update_rows, self._trained_rows = {}, 0, None, []
        if training_data is None:
            training_data = TrainingData(batch=batch, batches=batches, batch_refs=batch_refs, episodes=episodes,
                                         episodes_refs=episodes_refs, data_iterators=data_iterators)
        training_data.validate()
        training_data.solve_refs()
        if training_data.episodes is not None and not any(len(chunk) for chunk in training_data.episodes):
            self._update_rows = (training_data.episodes, None)
            self._log_trained()
            return self.metrics.reduce()
        with self.module.tied():
            results = super().update(training_data=training_data, timesteps=timesteps, **kwargs)
        if self._adaptive and training_data.episodes is not None:
            self._update_value_scale(training_data.episodes)
        return results

    def _update_value_scale(self, chunks) -> None:
        """Bids on the real line: folds the values the update's winners realised into the
        society's value statistics (the same on every learner) and re-maps every module to them
        (`SocietyMultiRLModule.set_value_moments`)."""
        values = np.concatenate([winner_values(c.records, c.utilities) for c in chunks if len(c)] or [np.zeros(0)])
        totals = torch.tensor([values.sum(), (values ** 2).sum(), len(values)], dtype=torch.float64)
        self._sum_over_learners([totals])
        if totals[2] > 0:
            moments = updated_moments(self.module.value_moments(), float(totals[0] / totals[2]),
                                      float(totals[1] / totals[2]), SCALE_DECAY)
            self.module.set_value_moments(moments)
            for key, value in zip(("value_location", "value_scale"), self.module.value_scale()):
                self.metrics.log_value((ALL_MODULES, key), value, window=1)

    @override(PPOTorchLearner)
    def _create_iterator_if_necessary(self, *, training_data, num_total_minibatches=0, num_epochs=1,
                                      minibatch_size=None, shuffle_batch_per_epoch=False, **kwargs):
        """PPO's epochs of minibatches over the society's batch, which RLlib's
        `MiniBatchCyclicIterator` slices module by module (most of an update's time for 32
        primitives): every module's batch has the same rows, so `SocietyMinibatches` slices
        all modules with one permutation per epoch.

        Several learners must run the same number of minibatches (each one all-reduces its
        gradients), also when their shards differ in size: every learner runs the largest
        learner's count, starting new epochs over its shard as needed. (RLlib's own
        `num_total_minibatches` counts auctions, not a module's rows, and rounds down to 0, which
        binds nothing, for small batches.)"""
        if training_data.episodes is None:
            return super()._create_iterator_if_necessary(
                training_data=training_data, num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs, minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch, **kwargs)
        chunks = list(training_data.episodes)
        batch = self._make_batch_if_necessary(training_data=training_data)
        for module_id in list(batch.policy_batches):
            if not self.should_module_be_updated(module_id, batch):
                del batch.policy_batches[module_id]
        if not batch.policy_batches:
            return []
        minibatches = SocietyMinibatches(batch, num_epochs, minibatch_size, shuffle_batch_per_epoch and num_epochs > 1,
                                         group=self.module.rows_per_state)
        minibatches.num_total_minibatches = _most_over_learners(len(minibatches))
        self._update_rows = (chunks, minibatches)
        return minibatches

    @override(PPOTorchLearner)
    def _log_steps_trained_metrics(self, batch) -> None:
        """RLlib logs six step counters per module and minibatch; they are summed here and
        logged once per update (`after_gradient_based_update`), with the same totals."""
        for module_id, module_batch in batch.policy_batches.items():
            self._steps_trained[module_id] = self._steps_trained.get(module_id, 0) + len(module_batch)
        self._minibatches += 1

    @override(PPOTorchLearner)
    def compute_losses(self, *, fwd_out, batch, **kwargs) -> dict[str, torch.Tensor]:
        """PPO's loss of every module (RLlib's `compute_loss_for_module`), computed for all
        modules at once; each module's loss is its own masked mean, with its own settings
        (``clip_param``, ``use_critic``, ``vf_clip_param``, ``vf_loss_coeff``, ``entropy_coeff``,
        ``use_kl_loss``)."""
        ids = list(fwd_out)
        configs = [self.config.get_config_for_module(m) for m in ids]
        stack = lambda source, key: _stacked_column([source[m][key] for m in ids])  # noqa: E731
        mask = stack(batch, Columns.LOSS_MASK).float()
        device = mask.device
        per_module = lambda values: torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)  # noqa: E731
        mean = lambda x: (x * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # noqa: E731

        current = self._bid_distribution.from_logits(stack(fwd_out, Columns.ACTION_DIST_INPUTS))
        actions = stack(batch, Columns.ACTIONS)
        ratio = torch.exp(current.logp_each(actions)[..., 0] - stack(batch, Columns.ACTION_LOGP))
        advantages = stack(batch, Postprocessing.ADVANTAGES)
        clip = per_module([c.clip_param for c in configs])
        surrogate = torch.min(advantages * ratio, advantages * torch.clamp(ratio, 1 - clip, 1 + clip))
        # RLlib's use_critic=False: no value loss (the advantages still use the values, as its GAE's).
        use_critic = per_module([c.use_critic for c in configs])
        vf_loss = use_critic * torch.pow(stack(fwd_out, Columns.VF_PREDS) - stack(batch, Postprocessing.VALUE_TARGETS), 2.0)
        vf_loss_clipped = torch.minimum(vf_loss, per_module([c.vf_clip_param for c in configs]))
        entropy = current.entropy_each()[..., 0]
        entropy_coeff = per_module([self.entropy_coeff_schedulers_per_module[m].get_current_value() for m in ids])
        policy_loss = -surrogate
        if SCORED_VALUES in batch[ids[0]]:  # exploration.scored_loss: mean
            values = stack(batch, SCORED_VALUES)
            policy_loss = torch.where(torch.isnan(values), policy_loss, mean_fit_loss(current, values))
        losses = mean(policy_loss + per_module([c.vf_loss_coeff for c in configs]) * vf_loss_clipped
                      - entropy_coeff * entropy)
        kl = torch.zeros_like(losses)
        use_kl = torch.tensor([c.use_kl_loss for c in configs], device=device)
        if use_kl.any():
            previous = self._bid_distribution.from_logits(stack(batch, Columns.ACTION_DIST_INPUTS))
            kl = torch.where(use_kl, mean(previous.kl_each(current)[..., 0]), 0.0)
            coeffs = torch.stack([self.curr_kl_coeffs_per_module[m] for m in ids]).reshape(-1).to(device)
            losses = losses + torch.where(use_kl, coeffs * kl, 0.0)
        self._loss_stats = (ids, torch.stack([-mean(surrogate), mean(vf_loss_clipped), mean(vf_loss),
                                              mean(entropy), kl]).detach())
        return dict(zip(ids, losses))

    @override(PPOTorchLearner)
    def after_gradient_based_update(self, *, timesteps) -> None:
        """After the update's last minibatch: what it trained (its auctions, steps per module
        and row identities), each module's loss terms and gradient norm of the last minibatch
        (RLlib logs them with a window of 1 after every minibatch: the same numbers), then
        RLlib's KL and entropy updates."""
        self._log_trained()
        if self._loss_stats is not None:
            ids, stats = self._loss_stats
            keys = (POLICY_LOSS_KEY, VF_LOSS_KEY, LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY, ENTROPY_KEY,
                    LEARNER_RESULTS_KL_KEY)
            for k, module_id in enumerate(ids):
                self.metrics.log_dict(dict(zip(keys, stats[:, k].tolist())), key=module_id, window=1)
            self._loss_stats = None
        if self._grad_norms is not None:
            ids, norms = self._grad_norms
            for module_id, norm in zip(ids, norms.tolist()):
                self.metrics.log_value((module_id, f"gradients_{DEFAULT_OPTIMIZER}_global_norm"), norm, window=1)
            self._grad_norms = None
        super().after_gradient_based_update(timesteps=timesteps)

    def _log_trained(self) -> None:
        """Logs what the update trained on, once it has: the auctions of its chunks (each once,
        not once per epoch: the number to hold against the env runners' sampled steps), RLlib's
        step counters per module (summed over minibatches), and the identities of the rows that
        were in a minibatch (`trained_rows`, and the row ledger if one is kept)."""
        self._trained_rows = []
        if self._update_rows is not None:
            chunks, minibatches = self._update_rows
            self._update_rows = None
            auctions = sum(chunk.env_steps() for chunk in chunks)
            self.metrics.log_value((ALL_MODULES, NUM_ENV_STEPS_TRAINED), auctions, reduce="sum")
            self.metrics.log_value((ALL_MODULES, NUM_ENV_STEPS_TRAINED_LIFETIME), auctions, reduce="lifetime_sum")
            if minibatches is not None:
                trained = np.isin(self.module.module_ids, minibatches.module_ids)
                self._trained_rows = (chunks, minibatches.seen.numpy() > 0, trained)
            if self._ledger is not None:
                self._ledger.record(self.trained_rows)
        if self._steps_trained:
            total = sum(self._steps_trained.values())
            for module_id, steps in self._steps_trained.items():
                self.metrics.log_value((module_id, WEIGHTS_SEQ_NO), self._weights_seq_no, window=1)
                self.metrics.log_value((module_id, MODULE_TRAIN_BATCH_SIZE_MEAN), steps / self._minibatches, reduce="mean")
                self.metrics.log_value((module_id, NUM_MODULE_STEPS_TRAINED), steps, reduce="sum")
                self.metrics.log_value((module_id, NUM_MODULE_STEPS_TRAINED_LIFETIME), steps,
                                       reduce="lifetime_sum", with_throughput=True)
            self.metrics.log_value((ALL_MODULES, NUM_MODULE_STEPS_TRAINED), total, reduce="sum", with_throughput=True)
            self.metrics.log_value((ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), total,
                                   reduce="lifetime_sum", with_throughput=True)
            self._steps_trained, self._minibatches = {}, 0

    @property
    def trained_rows(self) -> list[RowEntry]:
        """The identities of the rows the last update trained on (`rllib_society.rows`),
        worked out when first read (or when a row ledger is kept)."""
        if isinstance(self._trained_rows, tuple):
            self._trained_rows = trained_row_entries(*self._trained_rows)
        return self._trained_rows

    @override(PPOTorchLearner)
    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        """RLlib's Adam, with torch's fused kernel: the same maths, one call per module."""
        params = self.get_parameters(self._module[module_id])
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(params, fused=True),
                                params=params, lr_or_lr_schedule=config.lr)

    @override(PPOTorchLearner)
    def compute_gradients(self, loss_per_module, **kwargs):
        """RLlib's: the summed loss's gradients, each parameter's grad reset first (in one
        loop, where RLlib calls every module's optimizer's `zero_grad`); the stacked forward's
        gradients are handed to each module's parameters."""
        for param in self._params.values():
            param.grad = None
        self.module.zero_grads()
        self._stacked_gradients = None
        self._trained = [k for k, m in enumerate(self.module.module_ids) if m in loss_per_module]
        total = sum(loss_per_module.values())
        if not torch.is_tensor(total) or total.grad_fn is None:  # nothing to train
            return {}
        total.backward()
        self.module.scatter_grads(loss_per_module)
        gradients = {ref: param.grad for ref, param in self._params.items()}
        stacks = self.module.parameter_stacks()
        stacked = stacks and all(stack.grad is not None for stack, _ in stacks) and all(
            slices_of(stack.grad, [gradients.get(params[k]) for k in self._trained], self._trained)
            for stack, params in stacks)
        self._stacked_gradients = (gradients, list(gradients.values()), stacks) if stacked else None
        self._average_over_learners([stack.grad for stack, _ in stacks] if stacked else
                                    [grad for grad in gradients.values() if grad is not None])
        return gradients

    @staticmethod
    def _sum_over_learners(tensors: list[torch.Tensor]) -> int:
        """Data-parallel learners (``num_learners > 1``): each tensor summed over the learners in
        place; returns how many learners there are."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return 1
        world = torch.distributed.get_world_size()
        if world > 1:
            for tensor in tensors:
                torch.distributed.all_reduce(tensor)
        return world

    @staticmethod
    def _average_over_learners(grads: list[torch.Tensor]) -> None:
        """Data-parallel learners (``num_learners > 1``): each gradient averaged over the learners
        in place, on the few stacked tensors when the stacked forward made them (each module's
        gradients are views of their rows). RLlib's DDP hooks never see these gradients: the
        stacked forward bypasses the modules' own parameters."""
        world = SocietyPPOLearner._sum_over_learners(grads)
        for grad in grads if world > 1 else ():
            grad.div_(world)

    def _gradient_stacks(self, gradients_dict, every_module: bool = False) -> list | None:
        """The module's ``(stack, parameters)`` pairs (`TiedMLPs`) when the gradients to apply
        are still those `compute_gradients` made, the trained modules' rows of the stacked
        gradients (and, with `every_module`, every module trains): then clipping and Adam run
        on these few (modules, ...) tensors. Else None: CNN bidders, or gradients replaced."""
        if self._stacked_gradients is None or (every_module and len(self._trained) != len(self.module.module_ids)):
            return None
        made, values, stacks = self._stacked_gradients
        if gradients_dict is not made or any(a is not b for a, b in zip(gradients_dict.values(), values)):
            return None
        return stacks

    @override(PPOTorchLearner)
    def postprocess_gradients(self, gradients_dict):
        """RLlib's per-module gradient clip (``grad_clip`` by ``grad_clip_by``: "global_norm"
        of the module's gradients, each tensor's "norm", or "value") and its global-norm
        metric (``log_gradients``, or whenever it clips by global norm), batched: on the
        stacked gradients when the stacked forward trained the modules, else on every
        parameter's gradient. Non-finite gradient entries are zeroed first (RLlib zeroes them
        after the clip, in `apply_gradients`), unless ``torch_skip_nan_gradients``."""
        stacks = self._gradient_stacks(gradients_dict)
        if stacks is not None:  # rows: every module, untrained rows are zero
            grads = [stack.grad for stack, _ in stacks]
            ids = self.module.module_ids
            index = [torch.arange(len(ids), device=grads[0].device)] * len(grads)
        else:
            groups = [(m, refs) for m, refs in self._params_by_module().items()
                      if all(gradients_dict.get(ref) is not None for ref in refs)]  # frozen modules have none
            grads = [gradients_dict[ref].unsqueeze(0) for _, refs in groups for ref in refs]
            index = [torch.tensor([j], device=grads[0].device) for j, (_, refs) in enumerate(groups) for _ in refs] \
                if grads else []
            ids = [m for m, _ in groups]
        if not grads:
            return gradients_dict
        device = grads[0].device
        configs = [self.config.get_config_for_module(m) for m in ids]
        if not self.config.torch_skip_nan_gradients:
            for grad in grads:
                grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        tensor_norms = [g.flatten(1).norm(dim=1) for g in grads]  # each module's row of each tensor
        norms = torch.zeros(len(ids), device=device).index_add_(
            0, torch.cat(index), torch.cat([n.pow(2) for n in tensor_norms])).sqrt()
        if any(c.log_gradients or (c.grad_clip and c.grad_clip_by == "global_norm") for c in configs):
            self._grad_norms = ([m for m, c in zip(ids, configs) if c.log_gradients or (
                c.grad_clip and c.grad_clip_by == "global_norm")], norms[[
                    k for k, c in enumerate(configs) if c.log_gradients or (c.grad_clip and c.grad_clip_by == "global_norm")]])
        by = lambda mode: torch.tensor([bool(c.grad_clip) and c.grad_clip_by == mode for c in configs], device=device)  # noqa: E731
        limit = torch.tensor([c.grad_clip or float("inf") for c in configs], device=device)
        if by("global_norm").any():
            scale = torch.where(by("global_norm"), (limit / (norms + 1e-6)).clamp(max=1.0), 1.0)
            for grad, rows in zip(grads, index):
                grad.mul_(scale[rows].view(-1, *[1] * (grad.dim() - 1)))
        if by("norm").any():
            for grad, rows, norm in zip(grads, index, tensor_norms):
                scale = torch.where(by("norm")[rows] & (norm > limit[rows]), limit[rows] / norm, 1.0)
                grad.mul_(scale.view(-1, *[1] * (grad.dim() - 1)))
        if by("value").any():
            for grad, rows in zip(grads, index):
                bound = torch.where(by("value")[rows], limit[rows], float("inf")).view(-1, *[1] * (grad.dim() - 1))
                torch.clamp_(grad, min=-bound, max=bound)
        return gradients_dict

    def _params_by_module(self) -> dict[str, list]:
        """Each module's parameter refs, in `module_ids` order."""
        return {m: [self.get_param_ref(p) for p in self.module[m].parameters()] for m in self.module.module_ids}

    @override(PPOTorchLearner)
    def apply_gradients(self, gradients_dict) -> None:
        """Every module's Adam step, batched: one fused call over the stacked weights when
        every module trains with the same Adam settings and step count, else one fused call
        per group of modules with the same settings (one optimizer step per module costs more
        than a 32-primitive update). Each module keeps its own optimizer and state (the stacked
        Adam state is a stack of which each module's state tensors are slices): checkpoints,
        learning-rate schedules and their metrics stay RLlib's. Non-finite gradients were
        zeroed in `postprocess_gradients`."""
        for ref, grad in gradients_dict.items():
            self._params[ref].grad = grad
        optimizers = [self.get_optimizer(m) for m in self.module.module_ids]
        calls = defaultdict(lambda: ([], [], [], [], [], []))  # adam()'s lists, by its settings
        stacks = self._gradient_stacks(gradients_dict, every_module=True)
        if stacks is None or not self._stacked_adam_lists(stacks, optimizers, calls):
            calls.clear()
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    optimizer._init_group(group, *calls[_adam_settings(group)])  # torch's own lazy state set-up
        with torch.no_grad():
            for (lr, beta1, beta2, eps, weight_decay, maximize), lists in calls.items():
                if lists[0]:
                    adam(*lists, fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
                         weight_decay=weight_decay, eps=eps, maximize=maximize)
            for steps in self._step_counters:
                steps.add_(1.0)
        self._step_counters = []

    def _stacked_adam_lists(self, stacks, optimizers, calls) -> bool:
        """Fills `calls` with one Adam call over the stacked weights, gradients and Adam state
        (each parameter's state tensors become slices of stacks, `_stack_state`), and keeps
        the stacked step counters for `apply_gradients` to advance. False (nothing filled)
        unless every module has one param group, the same settings and the same step count
        (a module restored or added alone runs the per-module path)."""
        groups = [optimizer.param_groups for optimizer in optimizers]
        if any(len(g) != 1 for g in groups) or len({_adam_settings(g[0]) for g in groups}) != 1:
            return False
        states = [[optimizers[k].state.get(p) for k, p in enumerate(params)] for _, params in stacks]
        if not all(state for row in states for state in row):
            return False  # before the first step: torch sets the state up
        for j, row in enumerate(states):
            tied = self._adam_stacks.get(j)
            if tied is None or not all(slices_of(t, [s[key] for s in row]) for t, key in zip(tied, _ADAM_STATE)):
                self._adam_stacks[j] = tuple(_stack_state(row, key) for key in _ADAM_STATE)
        tied = [self._adam_stacks[j] for j in range(len(stacks))]
        steps = torch.cat([step for *_, step in tied])
        if not bool((steps == steps[0]).all()):
            return False
        lists = calls[_adam_settings(groups[0][0])]
        for (stack, _), (exp_avg, exp_avg_sq, step) in zip(stacks, tied):
            for values, value in zip(lists, (stack, stack.grad, exp_avg, exp_avg_sq, None, step[0].clone())):
                if value is not None:  # no max_exp_avg_sqs without amsgrad
                    values.append(value)
        self._step_counters = [step for *_, step in tied]  # advanced by apply_gradients
        return True

    @staticmethod
    @override(PPOTorchLearner)
    def _set_optimizer_lr(optimizer, lr) -> None:
        """RLlib's schedules give a tensor learning rate, which fused Adam refuses on CPU."""
        for group in optimizer.param_groups:
            group["lr"] = float(lr)


def mean_fit_loss(distribution, values: torch.Tensor) -> torch.Tensor:
    """(m - v)^2 / (2 s^2) per bid, m and s^2 the bid's mean and variance (s^2 held constant):
    ``exploration.scored_loss: mean``'s loss on a scored row with step value v (the value NaN on
    other rows, whose loss here is meaningless: PPO's applies there).

    Why: PPO moves a bid's mean a fraction of its spread per update (its ratio clip), and a stale
    bid's spread is tiny (in Taxi the drop-off's bid sits at the bottom of [0, 1] with a spread of
    0.001 where its value is 1), so PPO on the scored utility cannot bring it back. This loss's
    gradient in m is the scored utility's expected gradient, -(m - v), divided by s^2: the
    natural gradient of the bid's mean, which moves it in steps that do not shrink with its
    spread. Its minimum in m is E[v], the value, as the scored utility's is, so truthful bids
    stay the fixed point."""
    mean, variance = (x[..., 0] for x in distribution.mean_variance())
    return (mean - torch.nan_to_num(values)) ** 2 / (2 * variance.detach().clamp(min=1e-12))


def _most_over_learners(count: int) -> int:
    """With data-parallel learners, the largest of their `count`s (an all-reduce); else 0."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return 0
    if torch.distributed.get_world_size() == 1:
        return 0
    most = torch.tensor([count], dtype=torch.int64)
    torch.distributed.all_reduce(most, op=torch.distributed.ReduceOp.MAX)
    return int(most)


#: Adam's per-parameter state, in `adam()`'s argument order.
_ADAM_STATE = ("exp_avg", "exp_avg_sq", "step")


def _stacked_column(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The (modules, rows, ...) stack of one column of every module's batch: the tensor they
    are slices of, when they are (`SocietyMinibatches`, the stacked forward), else a new stack."""
    base = tensors[0]._base
    if (base is not None and base.shape == (len(tensors), *tensors[0].shape)
            and base.stride()[1:] == tensors[0].stride() and slices_of(base, tensors)):
        return base
    return torch.stack(tensors)


def _adam_settings(group: dict) -> tuple:
    """What one fused `adam()` call needs to be the same for all its tensors."""
    return (float(group["lr"]), *group["betas"], group["eps"], group["weight_decay"], group["maximize"])


def _stack_state(states: list[dict], key: str) -> torch.Tensor:
    """Stacks ``states[k][key]`` and makes each state's entry its slice of the stack."""
    stack = torch.stack([state[key] for state in states])
    for k, state in enumerate(states):
        state[key] = stack[k]
    return stack
