"""PPO learner of the society: PPO's own torch learner with `AuctionUtilityConnector` in its
learner pipeline, so advantages are computed from auction utilities, not env rewards; with
``standardize_advantages`` off, the spec's exact u_t - V(s_t) replaces GAE's standardized ones."""

from __future__ import annotations

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import (
    AddOneTsToEpisodesAndTruncate,
    GeneralAdvantageEstimation,
)
from ray.rllib.utils.annotations import override

from rllib_society.advantages import MemorylessAdvantages
from rllib_society.utility_connector import AuctionUtilityConnector


class SocietyPPOTorchLearner(PPOTorchLearner):
    """Reads ``auction`` and ``standardize_advantages`` from ``config.learner_config_dict``
    (plain values, so Tune can grid-search them)."""

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        auction = self.config.learner_config_dict["auction"]
        pipeline = self._learner_connector
        pipeline.insert_after(AddOneTsToEpisodesAndTruncate, AuctionUtilityConnector(auction=auction))
        # insert_after silently appends when its anchor is missing: the utilities would then never
        # reach the loss, so check the order.
        order = [type(piece) for piece in pipeline.connectors]
        if order.index(AuctionUtilityConnector) != order.index(AddOneTsToEpisodesAndTruncate) + 1:
            raise RuntimeError(f"AuctionUtilityConnector misplaced in the learner pipeline: {order}")
        if not self.config.learner_config_dict["standardize_advantages"]:
            pipeline.remove(GeneralAdvantageEstimation)
            pipeline.append(MemorylessAdvantages())
