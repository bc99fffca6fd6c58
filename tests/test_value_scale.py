"""Bids on the real line (``value_range: adaptive``): the Gaussian bid, the value statistics,
the exact re-mapping of the networks when they change, and the offers' prices."""

import numpy as np
import pytest
import torch

from rllib_society.bidder import TorchGaussianBid
from rllib_society.errors import FieldError
from rllib_society.exploration import logistic_price
from rllib_society.value_scale import (
    MIN_SCALE, initial_moments, location_scale, remap_gaussian_head, remap_value_head, updated_moments, winner_values,
)



def test_the_gaussian_bids_per_bid_formulas_are_torchs():
    torch.manual_seed(0)
    loc, log_std = torch.randn(5, 3), 0.5 * torch.randn(5, 3)  # log-stds inside the clamp's bounds
    other_loc, other_log_std = torch.randn(5, 3), 0.5 * torch.randn(5, 3)
    mine, other = TorchGaussianBid(loc, log_std), TorchGaussianBid(other_loc, other_log_std)
    ref, other_ref = torch.distributions.Normal(loc, log_std.exp()), torch.distributions.Normal(other_loc, other_log_std.exp())
    value = torch.randn(5, 3)
    torch.testing.assert_close(mine.logp_each(value), ref.log_prob(value))
    torch.testing.assert_close(mine.entropy_each(), ref.entropy())
    torch.testing.assert_close(mine.kl_each(other), torch.distributions.kl_divergence(ref, other_ref))
    torch.testing.assert_close(mine.logp(value), ref.log_prob(value).sum(-1))


def test_a_zero_output_bids_the_standard_normal_and_greedy_bids_its_mean():
    dist = TorchGaussianBid.from_logits(torch.zeros(1, 2))
    samples = dist.sample(sample_shape=(20_000,))
    assert abs(float(samples.mean())) < 0.03 and abs(float(samples.std()) - 1.0) < 0.03
    assert float(TorchGaussianBid.from_logits(torch.tensor([[1.5, -3.0]])).to_deterministic().loc) == 1.5


def test_the_first_update_takes_the_targets_moments_and_later_ones_average():
    moments = initial_moments()
    values = [np.array([-300.0, -100.0]), np.array([10.0, 20.0, 30.0])]
    moments = updated_moments(moments, values[0].mean(), (values[0] ** 2).mean(), decay=0.9)
    assert location_scale(moments) == pytest.approx((-200.0, 100.0))
    moments = updated_moments(moments, values[1].mean(), (values[1] ** 2).mean(), decay=0.9)
    # naive: 0.9 * old + 0.1 * new, for the mean and the mean square
    mean = 0.9 * -200.0 + 0.1 * 20.0
    square = 0.9 * (300.0 ** 2 + 100.0 ** 2) / 2 + 0.1 * (100.0 + 400.0 + 900.0) / 3
    assert location_scale(moments) == pytest.approx((mean, np.sqrt(square - mean ** 2)))
    assert int(moments[2]) == 2
    assert location_scale(torch.tensor([5.0, 25.0, 3.0], dtype=torch.float64)) == (5.0, MIN_SCALE)


@pytest.mark.parametrize("old, new", [((0.0, 1.0), (-200.0, 100.0)), ((-200.0, 100.0), (3.0, 0.5)), ((0.7, 0.1), (0.8, 0.05))])
def test_remapping_keeps_every_inputs_value_distribution_and_value_prediction(old, new):
    torch.manual_seed(1)
    head, critic, hidden = torch.nn.Linear(16, 2), torch.nn.Linear(16, 1), torch.randn(64, 16)

    def in_env_units(scale):
        with torch.no_grad():
            loc, log_std = head(hidden).unbind(-1)
            return scale[0] + scale[1] * loc, scale[1] * log_std.exp(), scale[1] * critic(hidden)[:, 0]

    before = in_env_units(old)
    remap_gaussian_head(head, old, new)
    remap_value_head(critic, old[1], new[1])
    for a, b in zip(before, in_env_units(new)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, abs(new[0])))


def test_winners_realise_their_utility_plus_their_price_except_in_scored_offers():
    records = [{"winner": 1, "price": 0.5}, {"winner": 0, "price": 0.2, "scored": True}, {"winner": 2, "price": -3.0},
               {"winner": 0, "price": 0.0, "pricing": True}]
    utilities = np.array([[0.0, 0.25, 0.0], [-0.01, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected = [0.25 + 0.5, 1.0 - 3.0]  # naive: the non-scored, non-pricing auctions' winners
    np.testing.assert_allclose(winner_values(records, utilities), expected)


@pytest.mark.parametrize("value", [-250.0, 3.0])
def test_a_logistic_price_keeps_the_offered_bidders_mean_utility_highest_at_its_value(value):
    """A random-price offer priced by the logistic around the society's values (location -200,
    scale 100 here): over 200,000 prices, the mean of (v - p) 1{b >= p} is highest on a grid of
    bids at v. Tolerance: the grid's step, 10 env units (the utility is flat near v: it loses
    about f(v) (b - v)^2 / 2)."""
    rng = np.random.default_rng(0)
    prices = np.array([logistic_price(u, -200.0, 100.0) for u in rng.random(200_000)])
    grid = np.arange(-400.0, 200.1, 10.0)
    mean_utility = [np.mean((value - prices) * (bid >= prices)) for bid in grid]
    assert abs(grid[int(np.argmax(mean_utility))] - value) <= 10.0 + 1e-9


def test_adaptive_is_a_value_range_and_the_stock_sampler_refuses_it():
    from rllib_society import SocietyPPOConfig

    with pytest.raises(FieldError, match=r"^value_range='adaptiv' is not allowed; value_range must be .*adaptive"):
        SocietyPPOConfig().society(env="envs:Chain-v0", value_range="adaptiv")
    with pytest.raises(FieldError, match=r"^value_range='adaptive' .*with sampler: stock"):
        SocietyPPOConfig().society(env="envs:Chain-v0", value_range="adaptive", sampler="stock")
    config = SocietyPPOConfig().society(env="envs:Chain-v0", value_range="adaptive")
    assert config.env_config["value_range"] == "adaptive"


def test_an_update_sets_the_value_scale_and_the_remap_keeps_what_bids_and_critics_stand_for():
    """On the fast path: the first learner update takes the moments of the values its winners
    realised; re-mapping every module to other moments changes neither the greedy bids in env
    units nor the critics' predictions in env units; a module's state carries the moments."""
    from test_env_runner import fast

    from rllib_society import greedy_bids
    from rllib_society.society_module import value_scale_of

    runner, learner = fast(3, value_range="adaptive", exploration={"kind": "scored", "rate": 0.3})
    chunks = runner.sample(random_actions=False)
    module = learner.module
    modules = {m: module[m] for m in module.module_ids}
    states = torch.eye(7)
    values = np.concatenate([winner_values(c.records, c.utilities) for c in chunks if len(c)])
    learner.update(episodes=chunks, num_epochs=1, minibatch_size=64)
    assert int(module.value_moments()[2]) == 1
    assert module.value_scale() == pytest.approx((values.mean(), values.std()), rel=1e-6)

    bids, scale = greedy_bids(modules, states.numpy()), module.value_scale()
    with torch.no_grad():
        critics = module.state_values(states) * scale[1]
    module.set_value_moments(torch.tensor([-50.0, 50.0 ** 2 + 20.0 ** 2, 2.0], dtype=torch.float64))
    assert module.value_scale() == pytest.approx((-50.0, 20.0))
    np.testing.assert_allclose(greedy_bids(modules, states.numpy()), bids, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(module.state_values(states) * 20.0, critics, rtol=1e-4, atol=1e-4)
    runner.module.set_state(module.get_state(inference_only=True))  # weight sync: the moments travel with them
    assert value_scale_of(runner.module[module.module_ids[0]]) == pytest.approx((-50.0, 20.0))
    runner.stop()
