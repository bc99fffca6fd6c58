"""Learner connector piece computing the memoryless bidders' advantages (spec section 2):
advantage = u_t - V(s_t) and value target = u_t, with nothing bootstrapped.

It replaces RLlib's `GeneralAdvantageEstimation` when ``standardize_advantages`` is off: at
gamma = 0 GAE computes the same numbers but then standardizes them per module, which for a bidder
that mostly loses (utility exactly 0) blows the uninformative losses up to unit size. Measured on
Bandit and Chain it learned no better than GAE, so GAE stays the default.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.numpy import convert_to_numpy


class MemorylessAdvantages(ConnectorV2):
    """Writes ``advantages = rewards - V(obs)`` and ``value_targets = rewards`` per module.

    Pipeline: the PPO learner connector, last (where GAE would be), after the batch is complete.
    Reads: each module's rewards (the auction utilities) and its value predictions.
    """

    def __init__(self, input_observation_space=None, input_action_space=None):
        super().__init__(input_observation_space, input_action_space)
        self._to_tensor = None

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs):
        results, device = {}, None
        for module_id, module_batch in batch.items():
            module = rl_module[module_id]
            if not isinstance(module, ValueFunctionAPI):
                continue
            values = module.compute_values(module_batch)
            device = values.device
            rewards = convert_to_numpy(module_batch[Columns.REWARDS])
            results[module_id] = {
                Postprocessing.ADVANTAGES: rewards - convert_to_numpy(values),
                Postprocessing.VALUE_TARGETS: rewards,
            }
        if self._to_tensor is None:
            self._to_tensor = NumpyToTensor(as_learner_connector=True, device=device)
        for module_id, tensors in self._to_tensor(
            rl_module=rl_module, batch=results, episodes=episodes
        ).items():
            batch[module_id].update(tensors)
        return batch
