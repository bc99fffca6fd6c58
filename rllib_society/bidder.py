"""The bidders' action distributions, plugged into RLlib's default PPO RLModule through a
catalog: a Beta over [0, 1] (spec section 3; RLlib has no Beta of its own), or, for bids on the
real line (``value_range: adaptive``, `rllib_society.value_scale`), a Gaussian.
"""

from __future__ import annotations

import math
import gymnasium as gym
import numpy as np
import torch
from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
from ray.rllib.core.distribution.torch.torch_distribution import (
    TorchDeterministic,
    TorchDistribution,
)
from ray.rllib.utils.annotations import override

from rllib_society.value_scale import SCALE_BUFFER, initial_moments

#: Samples are kept this far inside (0, 1) so log-probabilities stay finite.
BID_EPSILON = 1e-4
#: Floor of the Beta parameters (float32 saturation could otherwise make one 0).
MIN_CONCENTRATION = 1e-6
#: Smooth floor of the concentration alpha + beta. Below about 1e-3, torch's Beta sampler (a
#: ratio of two Gamma samples that underflow to 0) no longer draws from the distribution whose
#: log-probability PPO trains: at alpha = 3e-4, beta = 1e-6 (mean 0.997) its samples average 0.60.
#: A bidder that collapsed there never recovered (Chain-128, docs/results.md). At 1 and above the
#: sampler is exact; the floor leaves every concentration above about 1.5 unchanged.
CONCENTRATION_FLOOR = 1.0
_FLOOR_SHARPNESS = 10.0
#: softplus(0 + offset) = 2: at a zero network output alpha = beta = 1, uniform bids.
_CONCENTRATION_OFFSET = math.log(math.expm1(2.0))


class PerBidDistribution(TorchDistribution):
    """A distribution over a vector of bids, each with its own PPO loss: subclasses give the
    per-bid log-probability, entropy and KL (``logp_each``, ``entropy_each``, ``kl_each``), and
    RLlib's whole-action versions are their sums. Two network outputs per bid."""

    @override(TorchDistribution)
    def logp(self, value: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.logp_each(value).sum(-1)

    @override(TorchDistribution)
    def entropy(self) -> torch.Tensor:
        return self.entropy_each().sum(-1)

    @override(TorchDistribution)
    def kl(self, other: "PerBidDistribution") -> torch.Tensor:
        return self.kl_each(other).sum(-1)

    @staticmethod
    @override(TorchDistribution)
    def required_input_dim(space: gym.Space, **kwargs) -> int:
        return 2 * int(np.prod(space.shape))


class TorchBeta(PerBidDistribution):
    """Beta(alpha, beta) over one bid, from a mean m = sigmoid(x0) and a concentration
    nu = softplus(x1): alpha = m * nu, beta = (1 - m) * nu (the released code's parameterisation),
    with nu floored smoothly at `CONCENTRATION_FLOOR`.

    The softplus matters: under Adam it lets nu grow only about linearly in updates, a built-in
    annealing of the bid noise. A log concentration (nu = 2 exp(x1)) was measured to collapse the
    bids to a spread of ~0.004 within 15k Chain steps, after which PPO's ratio clip lets a mean move
    only ~0.2 spread per update and far-from-goal bids froze (0.53 vs Q* 0.77 at 56k steps).
    """

    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor):
        self.alpha, self.beta = alpha, beta
        super().__init__(alpha=alpha, beta=beta)
        self._log_beta = self._digammas = None

    @override(TorchDistribution)
    def _get_torch_distribution(self, alpha, beta) -> torch.distributions.Distribution:
        return torch.distributions.Beta(alpha, beta, validate_args=False)  # from_logits keeps both > 0

    # Per-bid versions: a society's action is a vector of bids, each with its own PPO loss. They
    # are torch's Beta formulas with the special functions computed once per distribution and
    # shared: PPO's loss takes the log-probability, entropy and KL of the same distributions,
    # and torch recomputes lgamma and digamma in each (~25% of a 1,024-primitive update).
    def log_beta(self) -> torch.Tensor:
        """log B(alpha, beta), the Beta's log normaliser."""
        if self._log_beta is None:
            self._log_beta = torch.lgamma(self.alpha) + torch.lgamma(self.beta) - torch.lgamma(self.alpha + self.beta)
        return self._log_beta

    def digammas(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """digamma of alpha, beta and alpha + beta."""
        if self._digammas is None:
            self._digammas = (torch.digamma(self.alpha), torch.digamma(self.beta),
                              torch.digamma(self.alpha + self.beta))
        return self._digammas

    def logp_each(self, value: torch.Tensor) -> torch.Tensor:
        """Log-probability of each bid (no sum over the bid vector)."""
        value = value.clamp(BID_EPSILON, 1 - BID_EPSILON)
        return (self.alpha - 1) * torch.log(value) + (self.beta - 1) * torch.log1p(-value) - self.log_beta()

    def entropy_each(self) -> torch.Tensor:
        digamma_alpha, digamma_beta, digamma_sum = self.digammas()
        return (self.log_beta() - (self.alpha - 1) * digamma_alpha - (self.beta - 1) * digamma_beta
                + (self.alpha + self.beta - 2) * digamma_sum)

    def kl_each(self, other: "TorchBeta") -> torch.Tensor:
        """KL(self || other) of each bid."""
        digamma_alpha, digamma_beta, digamma_sum = self.digammas()
        return (other.log_beta() - self.log_beta() + (self.alpha - other.alpha) * digamma_alpha
                + (self.beta - other.beta) * digamma_beta
                + ((other.alpha - self.alpha) + (other.beta - self.beta)) * digamma_sum)

    @override(TorchDistribution)
    def sample(self, *, sample_shape=()) -> torch.Tensor:
        # RLlib's sample_and_logp passes sample_shape=None.
        return self._dist.sample(sample_shape or ()).clamp(BID_EPSILON, 1 - BID_EPSILON)

    @override(TorchDistribution)
    def rsample(self, *, sample_shape=()) -> torch.Tensor:
        return self._dist.rsample(sample_shape or ()).clamp(BID_EPSILON, 1 - BID_EPSILON)

    @classmethod
    @override(TorchDistribution)
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "TorchBeta":
        mean_logit, concentration_logit = logits.chunk(2, dim=-1)
        concentration = torch.nn.functional.softplus(concentration_logit + _CONCENTRATION_OFFSET)
        concentration = CONCENTRATION_FLOOR + torch.nn.functional.softplus(
            concentration - CONCENTRATION_FLOOR, beta=_FLOOR_SHARPNESS)
        # sigmoid(-x), not 1 - sigmoid(x), which rounds to 0 for x > 17 in float32; the floor
        # keeps both parameters positive even for saturated outputs (bids drifting to 1, as
        # under the `env` auction, crashed a run with beta = 0).
        alpha = (torch.sigmoid(mean_logit) * concentration).clamp(min=MIN_CONCENTRATION)
        beta = (torch.sigmoid(-mean_logit) * concentration).clamp(min=MIN_CONCENTRATION)
        return cls(alpha, beta)

    @override(TorchDistribution)
    def to_deterministic(self) -> TorchDeterministic:
        """The mean bid, used for greedy evaluation."""
        return TorchDeterministic(loc=self.alpha / (self.alpha + self.beta))

    def mean_variance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The bid's mean and variance."""
        total = self.alpha + self.beta
        return self.alpha / total, self.alpha * self.beta / (total ** 2 * (total + 1))


class TorchGaussianBid(PerBidDistribution):
    """Normal(loc, exp(log_std)) over one bid on the real line (``value_range: adaptive``: the
    bid in units of the society's value scale), with `TorchBeta`'s per-bid methods. At a zero
    network output: the standard normal."""

    #: Bounds of the log-std (a spread of 2e-9 to 7.4 scale units).
    LOG_STD_BOUNDS = (-20.0, 2.0)

    def __init__(self, loc: torch.Tensor, log_std: torch.Tensor):
        self.loc, self.log_std = loc, log_std.clamp(*self.LOG_STD_BOUNDS)
        super().__init__(loc=self.loc, scale=self.log_std.exp())

    @override(TorchDistribution)
    def _get_torch_distribution(self, loc, scale) -> torch.distributions.Distribution:
        return torch.distributions.Normal(loc, scale, validate_args=False)

    def logp_each(self, value: torch.Tensor) -> torch.Tensor:
        """Log-probability of each bid (no sum over the bid vector)."""
        return -0.5 * ((value - self.loc) / self.log_std.exp()) ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)

    def entropy_each(self) -> torch.Tensor:
        return self.log_std + 0.5 * (1.0 + math.log(2 * math.pi))

    def kl_each(self, other: "TorchGaussianBid") -> torch.Tensor:
        """KL(self || other) of each bid."""
        ratio = torch.exp(2 * (self.log_std - other.log_std))
        return other.log_std - self.log_std + 0.5 * (ratio + ((self.loc - other.loc) / other.log_std.exp()) ** 2 - 1)

    @override(TorchDistribution)
    def sample(self, *, sample_shape=()) -> torch.Tensor:
        return self._dist.sample(sample_shape or ())

    @override(TorchDistribution)
    def rsample(self, *, sample_shape=()) -> torch.Tensor:
        return self._dist.rsample(sample_shape or ())

    @classmethod
    @override(TorchDistribution)
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "TorchGaussianBid":
        loc, log_std = logits.chunk(2, dim=-1)
        return cls(loc, log_std)

    @override(TorchDistribution)
    def to_deterministic(self) -> TorchDeterministic:
        """The mean bid, used for greedy evaluation."""
        return TorchDeterministic(loc=self.loc)

    def mean_variance(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The bid's mean and variance (in units of the value scale)."""
        return self.loc, torch.exp(2 * self.log_std)


def bid_distribution(space: gym.spaces.Box) -> type[TorchBeta] | type[TorchGaussianBid]:
    """The distribution of a bidder's action `space`: Beta for bids in [0, 1], Gaussian for
    bids on the real line."""
    return TorchBeta if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)) else TorchGaussianBid


class BidderCatalog(PPOCatalog):
    """PPO's default catalog with the bids' own distribution (`bid_distribution`)."""

    @override(PPOCatalog)
    def get_action_dist_cls(self, framework: str) -> type[TorchBeta] | type[TorchGaussianBid]:
        return bid_distribution(self.action_space)

    @override(PPOCatalog)
    def build_pi_head(self, framework: str):
        """PPO's policy head; for bids on the real line it also holds the society's value
        statistics (`value_scale.SCALE_BUFFER`), so env runners and checkpoints get them with
        the weights."""
        head = super().build_pi_head(framework)
        if self.get_action_dist_cls(framework) is TorchGaussianBid:
            head.register_buffer(SCALE_BUFFER, initial_moments())
        return head
