"""Semi-MDP discounting for single-agent PPO over options (the monolithic baseline). RLlib's GAE
discounts every step by gamma; an option that ran L env steps should discount what follows it by
gamma ** L, as the society's utilities do (`options`: the step's info holds that discount). This
learner connector computes GAE with each step's own discount, read from its info.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.learner.general_advantage_estimation import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.zero_padding import unpad_data_if_necessary

from rllib_society.options import OPTION_DISCOUNT


def semi_mdp_value_targets(values: np.ndarray, rewards: np.ndarray, discounts: np.ndarray,
                           terminateds: np.ndarray, truncateds: np.ndarray, lambda_: float) -> np.ndarray:
    """GAE value targets (RLlib's `compute_value_targets`) with step t's discount `discounts[t]`
    in place of one gamma: delta_t = r_t + d_t V(s_t+1) - V(s_t), A_t = delta_t + d_t lambda A_t+1."""
    non_terminal = 1.0 - terminateds
    propagate = non_terminal * (1.0 - truncateds)
    deltas = rewards + discounts * non_terminal * np.append(values[1:], 0.0) - values
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = 0.0
    for t in reversed(range(len(deltas))):
        running = deltas[t] + discounts[t] * lambda_ * propagate[t] * running
        advantages[t] = running
    return (advantages + values).astype(np.float32)


def step_discounts(episode, gamma: float) -> np.ndarray:
    """Each timestep's discount: its info's `OPTION_DISCOUNT`, else gamma (the timestep RLlib
    appends for the bootstrap value repeats the last)."""
    infos = episode.get_infos()[1:]  # the first info is reset's
    discounts = [info.get(OPTION_DISCOUNT, gamma) if isinstance(info, dict) else gamma for info in infos]
    discounts += discounts[-1:] * (len(episode) - len(discounts))
    return np.asarray(discounts[:len(episode)], dtype=np.float32)


class SemiMDPAdvantages(GeneralAdvantageEstimation):
    """RLlib's GAE learner connector with per-step discounts (`semi_mdp_value_targets`). Same
    place in the pipeline, same outputs (standardized advantages, value targets); modules
    without memory only."""

    @override(GeneralAdvantageEstimation)
    def __call__(self, *, rl_module, episodes, batch: dict[str, Any], **kwargs):
        sa_episodes = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        results, device = {}, None
        for module_id, module_batch in batch.items():
            module = rl_module[module_id]
            if not hasattr(module, "compute_values"):
                continue
            values = module.compute_values(module_batch)
            device = values.device
            own = [e for e in sa_episodes if e.module_id in (None, module_id)]
            lengths = [len(e) for e in own]
            unpad = lambda x: unpad_data_if_necessary(lengths, convert_to_numpy(x))  # noqa: E731
            values = unpad(values)
            targets = semi_mdp_value_targets(
                values, unpad(module_batch[Columns.REWARDS]),
                np.concatenate([step_discounts(e, self.gamma) for e in own]),
                unpad(module_batch[Columns.TERMINATEDS]), unpad(module_batch[Columns.TRUNCATEDS]), self.lambda_,
            )
            advantages = targets - values
            advantages = (advantages - advantages.mean()) / max(1e-4, advantages.std())
            results[module_id] = {Postprocessing.ADVANTAGES: advantages, Postprocessing.VALUE_TARGETS: targets}
        if self._numpy_to_tensor_connector is None:
            self._numpy_to_tensor_connector = NumpyToTensor(as_learner_connector=True, device=device)
        for module_id, tensors in self._numpy_to_tensor_connector(
                rl_module=rl_module, batch=results, episodes=episodes).items():
            batch[module_id].update(tensors)
        return batch


class SemiMDPPPOLearner(PPOTorchLearner):
    """RLlib's PPO learner whose GAE discounts each step by its own discount (`SemiMDPAdvantages`)."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.remove("GeneralAdvantageEstimation")
            self._learner_connector.append(SemiMDPAdvantages(gamma=self.config.gamma, lambda_=self.config.lambda_))
