"""The Beta bid distribution: uniform at start, mean and concentration mapping, finite
log-probabilities at the edges, and a mean bid for greedy evaluation."""

import gymnasium as gym
import numpy as np
import torch

from rllib_society.bidder import TorchBeta


def logits(mean_logit, concentration_logit):
    return torch.tensor([[mean_logit, concentration_logit]], dtype=torch.float32)


def test_zero_output_gives_uniform_bids():
    dist = TorchBeta.from_logits(logits(0.0, 0.0))
    assert torch.allclose(dist.alpha, torch.ones(1, 1)) and torch.allclose(dist.beta, torch.ones(1, 1))
    assert abs(float(dist.entropy())) < 1e-6  # the uniform density has zero entropy on [0, 1]


def test_mean_is_sigmoid_and_concentration_is_softplus():
    # softplus(x + log(e^2 - 1)) = 500  <=>  x = log(e^500 - 1) - log(e^2 - 1) ~ 500 - 1.855
    dist = TorchBeta.from_logits(logits(1.2, 500 - np.log(np.expm1(2.0))))
    mean = torch.sigmoid(torch.tensor(1.2))
    assert torch.allclose(dist.alpha + dist.beta, torch.tensor([[500.0]]), rtol=1e-4)
    assert torch.allclose(TorchBeta.from_logits(logits(1.2, 0.0)).to_deterministic().loc, mean.reshape(1, 1))
    samples = dist.sample(sample_shape=(2000,))
    assert abs(float(samples.mean()) - float(mean)) < 0.005 and float(samples.std()) < 0.03


def test_samples_stay_inside_and_logp_is_finite_at_the_edges():
    dist = TorchBeta.from_logits(logits(-6.0, -3.0))  # J-shaped, mass piled at 0
    samples = dist.sample(sample_shape=(1000,))
    assert float(samples.min()) > 0 and float(samples.max()) < 1
    assert torch.isfinite(dist.logp(torch.tensor([[0.0], [1.0]]))).all()


def test_rllibs_sample_and_logp_works():
    dist = TorchBeta.from_logits(logits(0.3, 1.0))
    bids, logp = dist.sample_and_logp()  # RLlib's TorchDistribution passes sample_shape=None
    assert bids.shape == (1, 1) and torch.allclose(logp, dist.logp(bids))


def test_deterministic_bid_is_the_mean_and_kl_is_zero_to_itself():
    dist = TorchBeta.from_logits(logits(0.7, 2.0))
    assert torch.allclose(dist.to_deterministic().sample(), dist.alpha / (dist.alpha + dist.beta))
    assert torch.allclose(dist.kl(dist), torch.zeros(1))
    assert TorchBeta.required_input_dim(gym.spaces.Box(0, 1, (1,))) == 2


def test_saturated_outputs_keep_a_valid_distribution():
    # Bids drifting to 1 (the `env` auction) once gave beta = 1 - sigmoid(20) = 0 in float32.
    for mean_logit, concentration_logit in ((20.0, 0.0), (-20.0, 0.0), (120.0, 5.0), (0.0, -200.0)):
        dist = TorchBeta.from_logits(logits(mean_logit, concentration_logit))
        assert (dist.alpha > 0).all() and (dist.beta > 0).all()
        assert torch.isfinite(dist.logp(torch.tensor([[0.5]]))).all()
    bid = TorchBeta.from_logits(logits(20.0, 0.0)).to_deterministic().loc
    assert float(bid) > 0.999


def test_a_collapsing_concentration_is_floored_so_samples_follow_the_mean():
    # A Chain-128 bidder collapsed to alpha = 3e-4, beta = 1e-6: mean 0.997, but torch's sampler
    # (two underflowing Gamma samples) drew bids averaging 0.60. The floor keeps alpha + beta >= 1.
    torch.manual_seed(0)
    for concentration_logit in (-8.0, -30.0, -200.0):
        dist = TorchBeta.from_logits(logits(5.8, concentration_logit))
        assert float(dist.alpha + dist.beta) >= 1.0
        mean = float(dist.to_deterministic().loc)
        assert abs(float(dist.sample(sample_shape=(20000,)).mean()) - mean) < 0.005
    # Above the floor's reach the concentration is softplus's, unchanged.
    for concentration_logit in (0.0, 1.0, 5.0):
        dist = TorchBeta.from_logits(logits(0.3, concentration_logit))
        softplus = torch.nn.functional.softplus(torch.tensor(concentration_logit + np.log(np.expm1(2.0))))
        assert abs(float(dist.alpha + dist.beta) - float(softplus)) < 1e-5


def test_log_prob_entropy_and_kl_match_torch_with_their_gradients():
    # The loss terms share one lgamma/digamma evaluation; torch's Beta is the oracle.
    torch.manual_seed(0)
    inputs = (torch.randn(64, 3, 2) * 3).requires_grad_()
    previous = TorchBeta.from_logits(torch.randn(64, 3, 2) * 3)
    bids = torch.rand(64, 3, 1)

    def terms(own: bool) -> list[torch.Tensor]:
        current = TorchBeta.from_logits(inputs)
        if own:
            values = [current.logp_each(bids), current.entropy_each(), previous.kl_each(current)]
        else:
            reference = torch.distributions.Beta(current.alpha, current.beta)
            values = [reference.log_prob(bids.clamp(1e-4, 1 - 1e-4)), reference.entropy(),
                      torch.distributions.kl_divergence(torch.distributions.Beta(previous.alpha, previous.beta),
                                                        reference)]
        return [(value, torch.autograd.grad(value.sum(), inputs, retain_graph=True)[0]) for value in values]

    for (own, own_grad), (reference, reference_grad) in zip(terms(True), terms(False)):
        assert torch.allclose(own, reference, rtol=1e-4, atol=1e-4)
        assert torch.allclose(own_grad, reference_grad, rtol=1e-3, atol=1e-3)
