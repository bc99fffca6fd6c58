"""Bids at any scale: a running location and scale of the society's values, and the exact
re-mapping of a network's outputs when they change (PopArt: van Hasselt et al., NeurIPS 2016).
Pure torch, no Ray.

With ``value_range: adaptive`` a bid is a value in env units, ``b = mu + sigma * z``: the bidder's
network outputs the mean and log-std of z, a Gaussian in units normalised by the society's
running value scale (mu, sigma). As the society's values move (Taxi's start near -385 and end in
[-25, 20]) the scale follows them, and every network's last layer is re-mapped so that the
values its bids stand for do not jump: the mean of z, an affine function of the last hidden
layer, goes to ``(sigma * z + mu - mu') / sigma'`` and its log-std shifts by
``log(sigma / sigma')``, exactly.
"""

from __future__ import annotations

import numpy as np
import torch

#: Weight of the past statistics per learner update (one update's targets weigh 0.1: about the
#: last ten updates count).
SCALE_DECAY = 0.9
#: The smallest scale: values that never vary (a one-state bandit's) keep a finite z.
MIN_SCALE = 1e-3


#: A module's buffer of the society's value statistics: [mean, mean of squares, updates folded in].
SCALE_BUFFER = "value_moments"


def initial_moments() -> torch.Tensor:
    """The statistics before any update: mean 0, scale 1 (a placeholder the first update replaces)."""
    return torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)


def location_scale(moments: torch.Tensor) -> tuple[float, float]:
    """(mu, sigma) of the statistics: their mean and standard deviation (at least `MIN_SCALE`)."""
    mean, square = float(moments[0]), float(moments[1])
    return mean, max(MIN_SCALE, max(square - mean * mean, 0.0) ** 0.5)


def updated_moments(moments: torch.Tensor, mean: float, square: float, decay: float) -> torch.Tensor:
    """The statistics with one update's value targets (their `mean` and mean `square`) folded
    in: exponential moving averages whose past weighs `decay`, except at the first update,
    which takes the targets' own."""
    weight = 1.0 if float(moments[2]) == 0 else 1.0 - decay
    new = moments.detach().double().clone()
    new[0] += weight * (mean - new[0])
    new[1] += weight * (square - new[1])
    new[2] += 1
    return new


def winner_values(records: list[dict], utilities: np.ndarray) -> np.ndarray:
    """The values that auctions' winners realised, in env units: utility plus the price paid
    (r + g * the next price, in any auction but a scored offer, whose winner earns a square
    loss). These targets set the value scale: grounded in rewards, not in the bids themselves."""
    rows = [r for r, record in enumerate(records) if not record.get("scored") and not record.get("pricing")]
    return np.array([utilities[r, records[r]["winner"]] + records[r]["price"] for r in rows], dtype=np.float64)


@torch.no_grad()
def remap_gaussian_head(layer: torch.nn.Linear, old: tuple[float, float], new: tuple[float, float]) -> None:
    """Re-maps the last linear layer of a Gaussian bid head (outputs: the mean of z, then its
    log-std) from the scale ``old = (mu, sigma)`` to ``new = (mu', sigma')`` so that every input
    gives the same distribution of values ``mu + sigma * z``."""
    (mu, sigma), (mu_new, sigma_new) = old, new
    layer.weight[0].mul_(sigma / sigma_new)
    layer.bias[0].mul_(sigma / sigma_new).add_((mu - mu_new) / sigma_new)
    layer.bias[1].add_(torch.log(torch.tensor(sigma / sigma_new, dtype=layer.bias.dtype)))


@torch.no_grad()
def remap_value_head(layer: torch.nn.Linear, old_scale: float, new_scale: float) -> None:
    """Re-maps a critic's last linear layer, which predicts utilities / sigma (utilities are
    differences of values: no location), so that its predictions in env units do not change."""
    layer.weight.mul_(old_scale / new_scale)
    layer.bias.mul_(old_scale / new_scale)
