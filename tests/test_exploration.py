"""Exploration offers (`rllib_society.exploration`): the settlement against a naive loop written
here, the incentive (truthful bids earn most), the draws, the settings, and greedy evaluation
without offers."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_society import FieldError
from rllib_society.auction import AUCTIONS, auction_outcomes, episode_utilities, market_balance, settle_auction
from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, AuctionEnv
from rllib_society.exploration import draw_offer, exploration_settings, offerable_bidders, scheduled_rate

GAMMA = 0.9


def naive_settlement(bids, active, offered, prices, auction, scored=None, clones=1):
    """Per step, by a plain loop: (winner, paid, what the usual winner would pay, the seller's
    receipt, {bidder: bid} of the bidders scored on their bids), the offered bidder buying when
    its bid is at least the price, else the auction running without it, or, for a scored offer,
    always acting and paying nothing, it and the other active clones of its primitive being
    scored on their bids; the seller always gets the usual price over all active bids."""
    scored = [False] * len(bids) if scored is None else scored
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
        score_bids = {}
        if offered[t] >= 0 and scored[t]:
            winner, paid = offered[t], 0.0
            for b in range(len(bids[t])):
                if active[t][b] and b // clones == offered[t] // clones:
                    score_bids[b] = bids[t][b]
        elif offered[t] >= 0 and bids[t][offered[t]] >= prices[t]:
            winner, paid = offered[t], prices[t]
        elif offered[t] >= 0:
            winner, paid, _ = clear(without=offered[t])
        else:
            winner, paid = usual_winner, usual_paid
        rows.append((winner, paid, usual_paid, receipt, score_bids))
    return rows


def naive_utilities(settled, rewards, auction, receipts=None):
    """(T, A) utilities of `naive_settlement`'s rows: the winner's value v (the reward plus the
    discounted receipt of the next step: its usual one, or `receipts`' (``lookahead: mean``))
    less what it paid, or, for the scored bidders, -(bid - v)^2 / 2; everyone else 0."""
    receipts = [s[3] for s in settled] if receipts is None else receipts
    want = np.zeros((len(settled), BIDDERS))
    for t, (winner, paid, _, _, score_bids) in enumerate(settled):
        lookahead = receipts[t + 1] if t + 1 < len(settled) else 0.0
        value = rewards[t] + GAMMA * lookahead
        if auction == "env":
            want[t, winner] = rewards[t]
            continue
        want[t, winner] = value - paid
        for b, bid in score_bids.items():
            want[t, b] = -(bid - value) ** 2 / 2
    return want


def naive_market_balance(settled, rewards, offered, receipts=None):
    """What the market keeps over the usual auction, summed: the offers' prices (a scored offer:
    the value and the scored bidders' losses) less what the usual winners would have paid, and,
    with other `receipts` than the usual ones, from step 1 on, the usual receipt less the one paid."""
    usual = [s[3] for s in settled]
    receipts = usual if receipts is None else receipts
    total = 0.0
    for t, (_, paid, usual_paid, _, score_bids) in enumerate(settled):
        if offered[t] >= 0:
            lookahead = receipts[t + 1] if t + 1 < len(settled) else 0.0
            value = rewards[t] + GAMMA * lookahead
            kept = value + sum((bid - value) ** 2 / 2 for bid in score_bids.values()) if score_bids else paid
            total += kept - usual_paid
        if t > 0:
            total += usual[t] - receipts[t]
    return total


BIDDERS = 6


def random_episode(rng, steps=12, bidders=BIDDERS):
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
    have = episode_utilities(bids, rewards, discounts, auction, active, offered, prices)
    np.testing.assert_allclose(have, naive_utilities(settled, rewards, auction), atol=1e-12)
    outcomes = auction_outcomes(bids, active, auction, offered, prices)
    assert outcomes.winners.tolist() == [s[0] for s in settled]
    np.testing.assert_allclose(outcomes.paid, [s[1] for s in settled])
    bought = [o >= 0 and bids[t, o] >= prices[t] for t, o in enumerate(offered)]
    assert outcomes.bought.tolist() == bought and any(bought) and not all(bought)
    # The market keeps the offers' prices less what the usual winners would have paid.
    assert market_balance(outcomes, rewards, discounts).sum() == pytest.approx(
        naive_market_balance(settled, rewards, offered))


@pytest.mark.parametrize("clones", [1, 2, 3])
@pytest.mark.parametrize("auction", AUCTIONS)
@pytest.mark.parametrize("seed", range(5))
def test_utilities_with_scored_and_random_price_offers_are_the_naive_loops(auction, seed, clones):
    rng = np.random.default_rng(100 + seed)
    bids, active, offered, prices = random_episode(rng)
    scored = rng.random(len(bids)) < 0.5
    assert (scored & (offered >= 0)).any() and (~scored & (offered >= 0)).any()
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    settled = naive_settlement(bids, active, offered, prices, auction, scored, clones)
    have = episode_utilities(bids, rewards, discounts, auction, active, offered, prices, scored, clones)
    np.testing.assert_allclose(have, naive_utilities(settled, rewards, auction), atol=1e-12)
    outcomes = auction_outcomes(bids, active, auction, offered, prices, scored, clones)
    assert outcomes.winners.tolist() == [s[0] for s in settled]
    np.testing.assert_allclose(outcomes.paid, [s[1] for s in settled])
    assert [set(np.flatnonzero(row)) for row in outcomes.scored] == [set(s[4]) for s in settled]
    if clones > 1:  # some scored offer scores more than the offered bidder
        assert (outcomes.scored.sum(axis=1) > 1).any()
    assert outcomes.bought[scored & (offered >= 0)].all()
    # The env's per-step settlement, one auction at a time, is the same loop's.
    inactive_nan = np.where(active, bids, np.nan)
    for t, (winner, paid, *_) in enumerate(settled):
        have = settle_auction(inactive_nan[t], active[t], auction, int(offered[t]), prices[t], bool(scored[t]))
        bought = offered[t] >= 0 and (scored[t] or bids[t, offered[t]] >= prices[t])
        assert have == (winner, pytest.approx(paid), bought)
    assert market_balance(outcomes, rewards, discounts).sum() == pytest.approx(
        naive_market_balance(settled, rewards, offered))


def test_without_offers_nothing_changes():
    rng = np.random.default_rng(7)
    bids, active, _, _ = random_episode(rng)
    rewards, discounts = rng.normal(size=len(bids)), np.full(len(bids), GAMMA)
    none = np.full(len(bids), -1)
    for auction in AUCTIONS:
        np.testing.assert_array_equal(episode_utilities(bids, rewards, discounts, auction, active),
                                      episode_utilities(bids, rewards, discounts, auction, active, none,
                                                        np.full(len(bids), np.nan)))


@pytest.mark.parametrize("scored", [False, True])
@pytest.mark.parametrize("auction", ["v", "ccv", "bb"])
@pytest.mark.parametrize("value", [0.15, 0.5, 0.8])
def test_the_offered_bidders_mean_utility_is_highest_at_its_value(auction, value, scored):
    """An offered bidder whose value for the state is v (its reward, discount 0: nothing
    after): over many uniform prices, with the others' bids drawn at random, its mean utility
    (through `episode_utilities`, one auction per price) is highest at the bid v. Tolerance: the bid grid's step, 0.05 (the mean
    utility near v is flat: the integral of (v - p) dp loses (b - v)^2 / 2, 0.00125 at 0.05, and
    the Monte Carlo error at 20,000 prices is about 0.0015). A scored offer earns that mean less
    v^2 / 2 on every draw, -(b - v)^2 / 2: its value is noisy here (v plus uniform noise of width
    0.4), so its mean too is an estimate."""
    rng = np.random.default_rng(0)
    draws, grid = 20_000, np.round(np.arange(0.0, 1.0001, 0.05), 2)
    prices, others = rng.random(draws), rng.random((draws, 3))
    mean_utility = []
    values = value + (rng.random(draws) - 0.5) * 0.4 if scored else np.full(draws, value)
    for bid in grid:
        bids = np.column_stack([np.full(draws, bid), others])
        utilities = episode_utilities(bids, values, np.zeros(draws), auction, offered=np.zeros(draws, dtype=int),
                                      offer_prices=prices, scored=np.full(draws, scored))
        mean_utility.append(utilities[:, 0].mean())
    assert abs(grid[int(np.argmax(mean_utility))] - value) <= 0.05 + 1e-9, dict(zip(grid, np.round(mean_utility, 4)))
    # Analytic: v * b - b^2 / 2 at every grid bid (less the mean of v^2 / 2, scored).
    offset = np.mean(values ** 2) / 2 if scored else 0.0
    np.testing.assert_allclose(mean_utility, value * grid - grid ** 2 / 2 - offset, atol=0.01)


def test_offers_go_to_active_bidders_of_uniformly_drawn_primitives_at_the_rate():
    rng = np.random.default_rng(0)
    clones, active = 2, np.array([True, False, False, False, True, True])  # primitive 1 sits out
    offerable = offerable_bidders(active, clones)
    draws = [draw_offer(rng, offerable, 0.3) for _ in range(30_000)]
    offered = np.array([d[0] for d in draws])
    assert np.mean(offered >= 0) == pytest.approx(0.3, abs=0.01)
    assert set(offered[offered >= 0]) == {0, 4, 5}
    # primitive 0 (one active clone) and primitive 2 (two) are each offered half the offers
    assert np.mean(offered[offered >= 0] == 0) == pytest.approx(0.5, abs=0.02)
    prices = np.array([d[1] for d in draws if d[0] >= 0])
    assert 0 <= prices.min() and prices.max() < 1 and np.mean(prices) == pytest.approx(0.5, abs=0.01)
    assert all(draw_offer(rng, offerable, 0.0)[0] == -1 for _ in range(100))


@pytest.mark.parametrize("value, field", [
    ("offers", "exploration"), ({"kind": "count"}, "exploration.kind"), ({"kind": "offers"}, "exploration.rate"),
    ({"kind": "offers", "rate": 1.5}, "exploration.rate"), ({"kind": "offers", "rate": 0.1, "schedule": []}, "exploration"),
    ({"kind": "scored", "rate": 0.1, "bonus": -1}, "exploration.bonus"), ({"kind": "none", "bonus": "1"}, "exploration.bonus"),
    ({"kind": "none", "bonus": [[0, 1.0], [10, -1.0]]}, "exploration.bonus"),
    ({"kind": "scored", "rate": 0.1, "baseline": "critic"}, "exploration.baseline"),
    ({"kind": "offers", "rate": 0.1, "baseline": "expected"}, "exploration.baseline"),
    ({"kind": "scored", "rate": 0.1, "scored_loss": "median"}, "exploration.scored_loss"),
    ({"kind": "offers", "rate": 0.1, "scored_loss": "mean"}, "exploration.scored_loss"),
    ({"kind": "scored", "rate": 0.1, "baseline": "expected", "scored_loss": "mean"}, "exploration.scored_loss"),
])
def test_bad_exploration_settings_name_the_field(value, field):
    with pytest.raises(FieldError, match=rf"^{field}=.* is not allowed; {field} must be"):
        exploration_settings(value)


def test_exploration_settings_defaults():
    assert exploration_settings(None) == {"kind": "none", "rate": 0.0, "bonus": 0.0, "baseline": "state",
                                          "scored_loss": "ppo"}
    assert exploration_settings({"kind": "offers", "rate": 0.25}) == {"kind": "offers", "rate": 0.25, "bonus": 0.0,
                                                                      "baseline": "state", "scored_loss": "ppo"}
    assert exploration_settings({"kind": "scored", "rate": 1, "bonus": 2, "baseline": "expected"}) == {
        "kind": "scored", "rate": 1.0, "bonus": 2.0, "baseline": "expected", "scored_loss": "ppo"}
    assert exploration_settings({"kind": "scored", "rate": 0.3, "scored_loss": "mean"})["scored_loss"] == "mean"
    assert exploration_settings({"kind": "none", "bonus": [[0, 5], [100, 0]]})["bonus"] == [[0, 5.0], [100, 0.0]]


@pytest.mark.parametrize("exploration", [{"kind": "offers", "rate": 0.5}, {"kind": "scored", "rate": 0.5}])
def test_the_env_records_offers_and_summarizes_them(exploration):
    env = AuctionEnv({"env": "envs:Chain-v0", "clones": 2, "gamma": GAMMA, "exploration": exploration})
    env.reset(seed=0)
    records, done = [], False
    rng = np.random.default_rng(0)
    while not done:
        _, _, terminated, truncated, info = env.step(rng.random(env.num_bidders))
        records.append(info[AUCTION_INFO])
        done = terminated or truncated
    offers = [r for r in records if r["offer"] >= 0]
    assert offers and len(offers) < len(records)
    assert all(r["scored"] == (exploration["kind"] == "scored" and r["offer"] >= 0) for r in records)
    column = lambda key: [r[key] for r in records]  # noqa: E731
    settled = naive_settlement(column("bids"), column("active"), column("offer"), column("offer_price"), "ccv",
                               column("scored"), env.clones)
    for r, (winner, paid, *_) in zip(records, settled):
        assert r["winner"] == winner and r["price"] == pytest.approx(paid)
        assert r["bought"] == (r["offer"] >= 0 and (r["scored"] or r["bids"][r["offer"]] >= r["offer_price"]))
    summary = records[-1][EPISODE_INFO]
    assert summary["offers"] == len(offers) and summary["offers_bought"] == sum(r["bought"] for r in records)
    assert summary["market_balance"] == pytest.approx(naive_market_balance(settled, column("reward"), column("offer")))


def test_the_count_bonus_is_the_naive_counts():
    """The winner's primitive is paid bonus / sqrt(n) env units for the n-th time it acts in a
    state (counted over the env's episodes), inside its reward in bid units; the summary adds up
    what the market paid."""
    bonus, value_range = 0.5, (-1.0, 2.0)
    env = AuctionEnv({"env": "envs:Chain-v0", "clones": 2, "gamma": GAMMA, "value_range": list(value_range),
                      "exploration": {"kind": "scored", "rate": 0.3, "bonus": bonus}})
    rng, counts, paid = np.random.default_rng(1), {}, []
    for episode in range(4):
        state, _ = env.reset(seed=episode)
        state, done, episode_paid = int(np.argmax(state)), False, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(rng.random(env.num_bidders))
            r = info[AUCTION_INFO]
            key = (state, r["winner"] // env.clones)
            counts[key] = counts.get(key, 0) + 1
            want = bonus / counts[key] ** 0.5
            assert r["bonus"] == pytest.approx(want)
            lo, hi = value_range
            shift = lo if r["last"] else (1 - r["discount"]) * lo
            assert reward == pytest.approx((r["env_reward"] + want - shift) / (hi - lo))
            episode_paid += want
            state, done = int(np.argmax(obs)), terminated or truncated
        assert r[EPISODE_INFO]["bonus_paid"] == pytest.approx(episode_paid)
        paid.append(episode_paid)
    assert max(counts.values()) > 1 and min(paid) > 0


def test_the_count_bonus_needs_discrete_states():
    with pytest.raises(FieldError, match=r"^exploration.bonus=1.0 is not allowed; exploration.bonus must be 0 for an env"):
        AuctionEnv({"env": "CartPole-v1", "value_range": [0, 500], "exploration": {"kind": "none", "bonus": 1.0}})


def test_greedy_evaluation_never_explores():
    from experiments.evaluation import evaluation_env

    env = evaluation_env({"env": "envs:Chain-v0", "exploration": {"kind": "offers", "rate": 1.0, "bonus": 1.0}})
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full(env.num_bidders, 0.5))
    assert info[AUCTION_INFO]["offer"] == -1 and info[AUCTION_INFO]["bonus"] == 0.0


def test_a_rate_schedule_is_piecewise_linear_and_held_after_its_last_point():
    schedule = exploration_settings({"kind": "scored", "rate": [[0, 0.5], [1000, 0.1], [3000, 0.0]]})["rate"]
    want = {0: 0.5, 500: 0.3, 1000: 0.1, 2000: 0.05, 3000: 0.0, 10**9: 0.0}  # by hand
    for steps, rate in want.items():
        assert scheduled_rate(schedule, steps) == pytest.approx(rate)
    assert scheduled_rate(0.2, 10**6) == 0.2


@pytest.mark.parametrize("rate", [[], [[10, 0.1]], [[0, 0.1], [0, 0.2]], [[0, 0.1], [100, 1.5]], [[0, 0.1, 3]],
                                  [0.1, 0.2]])
def test_bad_rate_schedules_name_the_field(rate):
    with pytest.raises(FieldError, match=r"^exploration.rate=.* is not allowed; exploration.rate must be .*schedule"):
        exploration_settings({"kind": "offers", "rate": rate})


def test_the_stock_sampler_refuses_the_expected_baseline():
    from rllib_society import SocietyPPOConfig

    with pytest.raises(FieldError, match=r"^exploration.baseline='expected' is not allowed; .*state with sampler: stock"):
        SocietyPPOConfig().society(env="envs:Chain-v0", sampler="stock",
                                   exploration={"kind": "scored", "rate": 0.5, "baseline": "expected"})


def test_the_stock_sampler_refuses_the_mean_fit():
    from rllib_society import SocietyPPOConfig

    with pytest.raises(FieldError, match=r"^exploration.scored_loss='mean' is not allowed; .*ppo with sampler: stock"):
        SocietyPPOConfig().society(env="envs:Chain-v0", sampler="stock",
                                   exploration={"kind": "scored", "rate": 0.5, "scored_loss": "mean"})


@pytest.mark.parametrize("key", ["rate", "bonus"])
def test_the_stock_sampler_refuses_a_schedule(key):
    from rllib_society import SocietyPPOConfig

    with pytest.raises(FieldError, match=rf"^exploration.{key}=.*must be a constant {key} with sampler: stock"):
        SocietyPPOConfig().society(env="envs:Chain-v0", sampler="stock",
                                   exploration={"kind": "offers", "rate": 0.5, key: [[0, 0.5], [100, 0.0]]})


def test_the_fast_env_runner_follows_the_schedule_in_the_algorithms_env_steps():
    """RLlib syncs the algorithm's env steps sampled into each env runner's state; offers
    follow the schedule: all auctions before step 1,000, none from step 2,000."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    from tests.test_env_runner import fast

    schedule = [[0, 1.0], [1000, 1.0], [2000, 0.0]]
    runner, _ = fast(8, exploration={"kind": "scored", "rate": schedule, "bonus": schedule})
    offers, bonus = {}, {}
    for steps in (0, 1500, 2000):
        runner.set_state({NUM_ENV_STEPS_SAMPLED_LIFETIME: steps})
        runner.sample(random_actions=False)  # hands over the auction its last call left pending
        records = [r for chunk in runner.sample(random_actions=False) for r in chunk.records]
        assert all(env.exploration_rate == env.bonus == scheduled_rate(schedule, steps) for env in runner.auction_envs)
        offers[steps] = np.mean([r["offer"] >= 0 for r in records])
        bonus[steps] = max(r["bonus"] for r in records)
    runner.stop()
    assert offers[0] == 1.0 and 0.2 < offers[1500] < 0.8 and offers[2000] == 0.0
    assert 0.0 < bonus[1500] <= 0.5 and bonus[2000] == 0.0
