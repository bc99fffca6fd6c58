"""The fast path's learner connector: `AuctionChunk`s to each primitive's PPO train batch.

Bidders are memoryless (spec section 2: a bid's utility already holds the discounted lookahead),
so PPO's targets are what RLlib's GAE gives with gamma 0, the stock path's setting: value target
u_t, advantage u_t - V_k(s_t), standardized per module as RLlib's GAE does. With bids on the
real line (``value_range: adaptive``) the value target is u_t / sigma, sigma the society's value
scale (`rllib_society.value_scale`).

With ``exploration.baseline: expected``, a row that a scored offer scored (its utility
-(b - v)^2 / 2, v the step's value) takes as its baseline that utility's expectation under the
bid distribution it was sampled from, -((m - v)^2 + s^2) / 2 (m, s^2 the bid's mean and
variance), instead of V_k(s_t). The critic sees only the state, where most of a loser's rows
earn 0, so a stale bid's large square loss is a near-constant negative advantage on its scored
rows, which PPO's ratio clip turns into a wider bid more than a moved one. The baseline does not
depend on the sampled bid (an offer's primitive acts whatever it bids), so the policy gradient's
expectation, and its fixed point m = E[v], are unchanged: only its variance falls. Measured in
docs/results.md: it helps where values settle early (FrozenLake) and slows Chain, whose values
keep rising for a long time (the wider bids tracked them).

With ``exploration.scored_loss: mean`` each module's batch also holds ``SCORED_VALUES``: a
scored row's step value v (in the bid's units: bid units, or units of the value scale on the real
line), NaN on every other row, which the learner fits the row's mean bid to
(`learner.mean_fit_loss`) instead of PPO's loss on its utility.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override

from rllib_society.env_runner import AuctionChunk
from rllib_society.rows import RowEntry, entries_of
from rllib_society.society_module import bid_distribution_of

#: A module batch's column of scored rows' step values (NaN on other rows), with the mean fit.
SCORED_VALUES = "scored_values"


class AuctionChunksToBatch(ConnectorV2):
    """Builds ``{p{k}: batch}`` from chunks: a row per auction and clone of primitive k, with its
    state, bid, log-probability, bid inputs, utility (``rewards`` and ``value_targets``),
    advantage and loss mask (False for a clone sitting out). Every module's batch has the same
    rows, so `SocietyMultiRLModule` can evaluate all modules at once."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, standardize: bool = True,
                 scored_baseline: str = "state", mean_fit: bool = False):
        super().__init__(input_observation_space, input_action_space)
        self.standardize, self.expected_baseline = standardize, scored_baseline == "expected"
        self.mean_fit = mean_fit

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs):
        wrong = {type(e).__name__ for e in episodes if not isinstance(e, AuctionChunk)}
        if wrong:
            raise TypeError(f"the society's learner trains on AuctionChunks from SocietyEnvRunner, got {wrong}; "
                            f"build the config with SocietyPPOConfig, or use RLlib's PPO learner on the stock path.")
        chunks = [c for c in episodes if len(c)]
        if not chunks:
            return batch
        column = lambda name: np.concatenate([getattr(c, name) for c in chunks])  # noqa: E731
        obs, bids, logp, inputs, utilities, scored_targets = (
            column(n) for n in ("obs", "bids", "logp", "bid_inputs", "utilities", "scored_targets"))
        active = np.concatenate([np.broadcast_to(c.active, c.bids.shape) for c in chunks])
        clones = bids.shape[1] // inputs.shape[1]
        device = next(rl_module[rl_module.module_ids[0]].parameters()).device
        tensor = lambda x: torch.as_tensor(x, device=device)  # noqa: E731
        with torch.no_grad():
            values = rl_module.state_values(tensor(obs)).cpu().numpy()  # (N, R)
        # Bids on the real line: the critics predict utilities in units of the value scale.
        scale = rl_module.value_scale()
        mu, sigma = (0.0, 1.0) if scale is None else scale
        obs_rows = tensor(np.repeat(obs, clones, axis=0))  # row r * clones + c: auction r, clone c
        for k, module_id in enumerate(rl_module.module_ids):
            bidders = slice(k * clones, (k + 1) * clones)
            mask = active[:, bidders].reshape(-1)
            targets = utilities[:, bidders].reshape(-1) / sigma
            baselines = np.repeat(values[k], clones)
            step_values = scored_targets[:, bidders].reshape(-1)
            scored = ~np.isnan(step_values)
            if self.expected_baseline and scored.any():
                rows_inputs = inputs[np.flatnonzero(scored) // clones, k]
                baselines[scored] = expected_square_loss(rows_inputs, step_values[scored], scale) / sigma
            advantages = targets - baselines
            if self.standardize and mask.any():
                valid = advantages[mask]
                advantages = (advantages - valid.mean()) / max(1e-4, valid.std())
            batch[module_id] = {
                Columns.OBS: obs_rows,
                Columns.ACTIONS: tensor(bids[:, bidders].reshape(-1, 1)),
                Columns.ACTION_LOGP: tensor(logp[:, bidders].reshape(-1)),
                Columns.ACTION_DIST_INPUTS: tensor(np.repeat(inputs[:, k], clones, axis=0)),
                Columns.REWARDS: tensor(targets * sigma),
                Columns.LOSS_MASK: tensor(mask),
                Postprocessing.ADVANTAGES: tensor(advantages.astype(np.float32)),
                Postprocessing.VALUE_TARGETS: tensor(targets),
            }
            if self.mean_fit:
                batch[module_id][SCORED_VALUES] = tensor(((step_values - mu) / sigma).astype(np.float32))
        return batch


def expected_square_loss(bid_inputs: np.ndarray, values: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
    """-((m - v)^2 + s^2) / 2: the mean of a scored utility -(b - v)^2 / 2 over bids b from the
    distributions of `bid_inputs` (mean m, variance s^2; on the real line, mapped to env units
    by the value `scale`), for the steps' `values` v."""
    with torch.no_grad():
        mean, variance = (x[..., 0].double().numpy() for x in
                          bid_distribution_of(scale).from_logits(torch.as_tensor(bid_inputs)).mean_variance())
    mu, sigma = (0.0, 1.0) if scale is None else scale
    return -((mu + sigma * mean - values) ** 2 + sigma ** 2 * variance) / 2


def trained_row_entries(chunks: list[AuctionChunk], seen: np.ndarray, trained: np.ndarray) -> list[RowEntry]:
    """The identities of the rows of `chunks` that were trained: laid out as `AuctionChunksToBatch`
    lays them (row r * clones + c: auction r of the non-empty chunks, clone c), a row of bidder
    k * clones + c is trained when `seen` marks its row, module k is `trained` and the bidder
    was active."""
    chunks = [chunk for chunk in chunks if len(chunk)]
    if not chunks:
        return []
    clones = chunks[0].bids.shape[1] // chunks[0].bid_inputs.shape[1]
    seen = seen.reshape(-1, clones)  # (auctions, clones)
    bidders = np.repeat(trained, clones)
    entries, offset = [], 0
    for chunk in chunks:
        rows = seen[offset:offset + len(chunk)]
        offset += len(chunk)
        steps = np.array([record["step"] for record in chunk.records], dtype=np.int64)
        entries += entries_of(chunk.id_, steps, np.tile(rows, len(trained)) & chunk.active & bidders)
    return entries
