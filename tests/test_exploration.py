"""Exploration offers (`rllib_society.exploration`): the settlement against a naive loop written
here, the incentive (truthful bids earn most), the draws, the settings, and greedy evaluation
without offers."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_society import FieldError
from rllib_society.auction import AUCTIONS, auction_outcomes, episode_utilities
from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, AuctionEnv
from rllib_society.exploration import draw_offer, exploration_settings

GAMMA = 0.9


def naive_settlement(bids, active, offered, prices, auction):
    """Per step, by a plain loop: (winner, paid, what the usual winner would pay, the seller's
    receipt), the offered bidder buying when its bid is at least the price, else the auction
    running without it; the seller always gets the usual price over all active bids."""
    rows = []
    for t in range(len(bids)):
        def clear(without=-1):
            ids = [b for b in range(len(bids[t])) if active[t][b] and b != without]
            ordered = sorted(ids, key=lambda b: (-bids[t][b], b))
            winner = ordered[0]
            second = bids[t][ordered[1]] if len(ordered) > 1 else 0.0
            return winner, (bids[t][winner] if auction == "bb" else second), second

        usual_winner, usual_paid, usual_second = clear()
        receipt = usual_second if auction in ("ccv", "env") else bids[t][usual_winner]
        if offered[t] >= 0 and bids[t][offered[t]] >= prices[t]:
            winner, paid = offered[t], prices[t]
        elif offered[t] >= 0:
            winner, paid, _ = clear(without=offered[t])
        else:
            winner, paid = usual_winner, usual_paid
        rows.append((winner, paid, usual_paid, receipt))
    return rows


def random_episode(rng, steps=12, bidders=6):
    bids = rng.random((steps, bidders)).round(2)  # ties happen
    active = rng.random((steps, bidders)) < 0.8
    active[:, :2] = True
    offered = np.where(rng.random(steps) < 0.6, rng.integers(0, bidders, steps), -1)
    offered = np.where((offered >= 0) & active[np.arange(steps), np.maximum(offered, 0)], offered, -1)
    prices = rng.random(steps).round(2)
    equal = np.flatnonzero(offered >= 0)[:2]
    prices[equal] = bids[equal, offered[equal]]  # a price equal to the bid: it buys
    return bids, active, offered, prices


@pytest.mark.parametrize("auction", AUCTIONS)
@pytest.mark.parametrize("seed", range(5))
def test_utilities_with_offers_are_the_naive_loops(auction, seed):
    rng = np.random.default_rng(seed)
    bids, active, offered, prices = random_episode(rng)
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    settled = naive_settlement(bids, active, offered, prices, auction)
    want = np.zeros(bids.shape)
    for t, (winner, paid, _, _) in enumerate(settled):
        lookahead = settled[t + 1][3] if t + 1 < len(bids) else 0.0
        want[t, winner] = rewards[t] if auction == "env" else rewards[t] + GAMMA * lookahead - paid
    have = episode_utilities(bids, rewards, discounts, auction, active, offered, prices)
    np.testing.assert_allclose(have, want, atol=1e-12)
    outcomes = auction_outcomes(bids, active, auction, offered, prices)
    assert outcomes.winners.tolist() == [s[0] for s in settled]
    np.testing.assert_allclose(outcomes.paid, [s[1] for s in settled])
    bought = [o >= 0 and bids[t, o] >= prices[t] for t, o in enumerate(offered)]
    assert outcomes.bought.tolist() == bought and any(bought) and not all(bought)
    # The market keeps the offers' prices less what the usual winners would have paid.
    balance = sum(s[1] - s[2] for t, s in enumerate(settled) if offered[t] >= 0)
    assert float((outcomes.paid - outcomes.usual_paid)[offered >= 0].sum()) == pytest.approx(balance)


def test_without_offers_nothing_changes():
    rng = np.random.default_rng(7)
    bids, active, _, _ = random_episode(rng)
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    none = np.full(len(bids), -1)
    for auction in AUCTIONS:
        np.testing.assert_array_equal(episode_utilities(bids, rewards, discounts, auction, active),
                                      episode_utilities(bids, rewards, discounts, auction, active, none,
                                                        np.full(len(bids), np.nan)))


@pytest.mark.parametrize("auction", ["v", "ccv", "bb"])
@pytest.mark.parametrize("value", [0.15, 0.5, 0.8])
def test_the_offered_bidders_mean_utility_is_highest_at_its_value(auction, value):
    """An offered bidder whose value for the state is v (its reward, discount 0: nothing
    after): over many uniform prices, with the others' bids drawn at random, its mean utility
    (through `episode_utilities`, one auction per price) is highest at the bid v. Tolerance: the bid grid's step, 0.05 (the mean
    utility near v is flat: the integral of (v - p) dp loses (b - v)^2 / 2, 0.00125 at 0.05, and
    the Monte Carlo error at 20,000 prices is about 0.0015)."""
    rng = np.random.default_rng(0)
    draws, grid = 20_000, np.round(np.arange(0.0, 1.0001, 0.05), 2)
    prices, others = rng.random(draws), rng.random((draws, 3))
    mean_utility = []
    for bid in grid:
        bids = np.column_stack([np.full(draws, bid), others])
        utilities = episode_utilities(bids, np.full(draws, value), np.zeros(draws), auction,
                                      offered=np.zeros(draws, dtype=int), offer_prices=prices)
        mean_utility.append(utilities[:, 0].mean())
    assert abs(grid[int(np.argmax(mean_utility))] - value) <= 0.05 + 1e-9, dict(zip(grid, np.round(mean_utility, 4)))
    # Analytic: v * b - b^2 / 2 at every grid bid.
    np.testing.assert_allclose(mean_utility, value * grid - grid ** 2 / 2, atol=0.01)


def test_offers_go_to_active_bidders_of_uniformly_drawn_primitives_at_the_rate():
    rng = np.random.default_rng(0)
    clones, active = 2, np.array([True, False, False, False, True, True])  # primitive 1 sits out
    draws = [draw_offer(rng, active, clones, 0.3) for _ in range(30_000)]
    offered = np.array([d[0] for d in draws])
    assert np.mean(offered >= 0) == pytest.approx(0.3, abs=0.01)
    assert set(offered[offered >= 0]) == {0, 4, 5}
    # primitive 0 (one active clone) and primitive 2 (two) are each offered half the offers
    assert np.mean(offered[offered >= 0] == 0) == pytest.approx(0.5, abs=0.02)
    prices = np.array([d[1] for d in draws if d[0] >= 0])
    assert 0 <= prices.min() and prices.max() < 1 and np.mean(prices) == pytest.approx(0.5, abs=0.01)
    assert all(draw_offer(rng, active, clones, 0.0)[0] == -1 for _ in range(100))


@pytest.mark.parametrize("value, field", [
    ("offers", "exploration"), ({"kind": "count"}, "exploration.kind"), ({"kind": "offers"}, "exploration.rate"),
    ({"kind": "offers", "rate": 1.5}, "exploration.rate"), ({"kind": "offers", "rate": 0.1, "schedule": []}, "exploration"),
])
def test_bad_exploration_settings_name_the_field(value, field):
    with pytest.raises(FieldError, match=rf"^{field}=.* is not allowed; {field} must be"):
        exploration_settings(value)


def test_exploration_settings_defaults():
    assert exploration_settings(None) == {"kind": "none", "rate": 0.0}
    assert exploration_settings({"kind": "offers", "rate": 0.25}) == {"kind": "offers", "rate": 0.25}


def test_the_env_records_offers_and_summarizes_them():
    env = AuctionEnv({"env": "envs:Chain-v0", "clones": 2, "exploration": {"kind": "offers", "rate": 0.5}})
    env.reset(seed=0)
    records, done = [], False
    rng = np.random.default_rng(0)
    while not done:
        _, _, terminated, truncated, info = env.step(rng.random(env.num_bidders))
        records.append(info[AUCTION_INFO])
        done = terminated or truncated
    offers = [r for r in records if r["offer"] >= 0]
    assert offers and len(offers) < len(records)
    for r in records:
        settled = naive_settlement([r["bids"]], [r["active"]], [r["offer"]], [r["offer_price"]], "ccv")[0]
        assert r["winner"] == settled[0] and r["price"] == pytest.approx(settled[1])
        assert r["bought"] == (r["offer"] >= 0 and r["bids"][r["offer"]] >= r["offer_price"])
    summary = records[-1][EPISODE_INFO]
    assert summary["offers"] == len(offers) and summary["offers_bought"] == sum(r["bought"] for r in records)
    balance = sum(s[1] - s[2] for r in offers
                  for s in naive_settlement([r["bids"]], [r["active"]], [r["offer"]], [r["offer_price"]], "ccv"))
    assert summary["market_balance"] == pytest.approx(balance)


def test_greedy_evaluation_never_explores():
    from experiments.evaluation import evaluation_env

    env = evaluation_env({"env": "envs:Chain-v0", "exploration": {"kind": "offers", "rate": 1.0}})
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(env.num_bidders, 0.5))
    assert info[AUCTION_INFO]["offer"] == -1
