"""``lookahead: mean``: a state sells for the clearing price of the bidders' mean bids, while the
sampled bids decide who wins and what the buyer pays. The settlement against a naive loop written
here, the market's balance, the incentive (bidding one's value earns most), and the settings."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_society.auction import AUCTIONS, auction_outcomes, episode_utilities, market_balance
from test_exploration import GAMMA, naive_market_balance, naive_settlement, naive_utilities, random_episode


def naive_receipts(means, active, auction):
    """Per step, by a plain loop, what the state's seller receives: the second-highest active mean
    bid (``ccv``, ``env``; 0 for a lone bidder) or the highest (``v``, ``bb``)."""
    receipts = []
    for t in range(len(means)):
        ordered = sorted((b for b in range(len(means[t])) if active[t][b]), key=lambda b: (-means[t][b], b))
        second = means[t][ordered[1]] if len(ordered) > 1 else 0.0
        receipts.append(second if auction in ("ccv", "env") else means[t][ordered[0]])
    return receipts


@pytest.mark.parametrize("clones", [1, 2, 3])
@pytest.mark.parametrize("auction", AUCTIONS)
@pytest.mark.parametrize("seed", range(4))
def test_mean_lookahead_utilities_are_the_naive_loops(auction, seed, clones):
    rng = np.random.default_rng(300 + seed)
    bids, active, offered, prices = random_episode(rng)
    means = (bids + rng.normal(scale=0.2, size=bids.shape)).round(2)
    scored = rng.random(len(bids)) < 0.5
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    settled = naive_settlement(bids, active, offered, prices, auction, scored, clones)
    receipts = naive_receipts(means, active, auction)
    assert not np.allclose(receipts, [s[3] for s in settled])  # the mean bids price differently
    have = episode_utilities(bids, rewards, discounts, auction, active, offered, prices, scored, clones, means)
    np.testing.assert_allclose(have, naive_utilities(settled, rewards, auction, receipts), atol=1e-12)
    outcomes = auction_outcomes(bids, active, auction, offered, prices, scored, clones, means)
    assert outcomes.winners.tolist() == [s[0] for s in settled]  # the sampled bids decide who wins
    np.testing.assert_allclose(outcomes.paid, [s[1] for s in settled])  # and what the buyer pays
    np.testing.assert_allclose(outcomes.received, receipts)
    np.testing.assert_allclose(outcomes.usual_received, [s[3] for s in settled])
    assert market_balance(outcomes, rewards, discounts).sum() == pytest.approx(
        naive_market_balance(settled, rewards, offered, receipts))


def test_mean_bids_equal_to_the_sampled_ones_change_nothing():
    rng = np.random.default_rng(9)
    bids, active, offered, prices = random_episode(rng)
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    for auction in AUCTIONS:
        np.testing.assert_array_equal(
            episode_utilities(bids, rewards, discounts, auction, active, offered, prices, lookahead_bids=bids),
            episode_utilities(bids, rewards, discounts, auction, active, offered, prices))


@pytest.mark.parametrize("auction", ["v", "ccv"])
@pytest.mark.parametrize("value", [0.2, 0.55, 0.9])
def test_a_buyers_mean_utility_is_highest_at_its_value(auction, value):
    # Two-step episodes: bidder 0 bids b for the first state against 3 random rivals; the second
    # state's random mean bids, which set what bidder 0 sells it for, never depend on b. Its value
    # is the reward plus the discounted mean receipt; over 4,000 episodes, bidding it earns most.
    # The episodes run as one, each second step's discount 0 cutting it from the next episode.
    rng = np.random.default_rng(0)
    draws, grid = 4000, np.linspace(0.0, 1.0, 21)
    first, second, second_means = rng.random((draws, 4)), rng.random((draws, 4)), rng.random((draws, 4))
    receipts = np.sort(second_means, axis=1)[:, -2 if auction == "ccv" else -1]
    reward = value - GAMMA * receipts.mean()
    rewards, discounts = np.tile([reward, 0.0], draws), np.tile([GAMMA, 0.0], draws)
    mean_utility = []
    for bid in grid:
        first[:, 0] = bid
        bids = np.stack([first, second], axis=1).reshape(2 * draws, 4)
        means = np.stack([first, second_means], axis=1).reshape(2 * draws, 4)
        utilities = episode_utilities(bids, rewards, discounts, auction, lookahead_bids=means)
        mean_utility.append(utilities[::2, 0].mean())
    # The grid's step is 0.05, and the curve is flat near its top (the sampled rivals).
    best, nearest = grid[int(np.argmax(mean_utility))], int(np.argmin(abs(grid - value)))
    assert abs(best - value) <= 0.05, (best, value, mean_utility)
    assert max(mean_utility) - mean_utility[nearest] < 2e-3, mean_utility


def test_bad_lookahead_shapes_are_rejected():
    bids = np.zeros((3, 2))
    with pytest.raises(ValueError, match="lookahead_bids"):
        auction_outcomes(bids, lookahead_bids=np.zeros((3, 3)))
