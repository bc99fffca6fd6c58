"""The auction maths against hand-computed episodes (spec section 2)."""

import numpy as np
import pytest

from rllib_society.auction import AUCTIONS, clear_auctions, episode_utilities

GAMMA = 0.99

# A 3-step Chain episode of 2 primitives x 2 clones, agents [p0_c0, p0_c1, p1_c0, p1_c1].
# Winners: p1_c0 (0.7 over 0.5), p1_c1 (0.6 over 0.4), p1_c0 (0.9 over 0.85); reward 0.8 at the end.
BIDS = np.array([[0.1, 0.2, 0.7, 0.5], [0.3, 0.35, 0.4, 0.6], [0.05, 0.1, 0.9, 0.85]])
REWARDS = np.array([0.0, 0.0, 0.8])
DISCOUNTS = np.full(3, GAMMA)
WINNERS = [2, 3, 2]

# The winner's utility at each step, derived by hand from the spec's table.
EXPECTED_WINNER_UTILITY = {
    # r_t + g * P_{t+1} - p_t
    "ccv": [0 + GAMMA * 0.4 - 0.5, 0 + GAMMA * 0.85 - 0.4, 0.8 + 0 - 0.85],
    # r_t + g * B_{t+1} - p_t
    "v": [0 + GAMMA * 0.6 - 0.5, 0 + GAMMA * 0.9 - 0.4, 0.8 + 0 - 0.85],
    # r_t + g * B_{t+1} - b_t
    "bb": [0 + GAMMA * 0.6 - 0.7, 0 + GAMMA * 0.9 - 0.6, 0.8 + 0 - 0.9],
    "env": [0.0, 0.0, 0.8],
}


@pytest.mark.parametrize("auction", AUCTIONS)
def test_hand_computed_episode(auction):
    utilities = episode_utilities(BIDS, REWARDS, DISCOUNTS, auction)
    expected = np.zeros_like(BIDS)
    expected[[0, 1, 2], WINNERS] = EXPECTED_WINNER_UTILITY[auction]
    np.testing.assert_allclose(utilities, expected, atol=1e-12)


def test_notes_numbers_for_the_hand_computed_episode():
    # The same episode as checked by hand in the RLlib feasibility notes.
    ccv = episode_utilities(BIDS, REWARDS, DISCOUNTS, "ccv")
    np.testing.assert_allclose(ccv[:, 2], [-0.104, 0.0, -0.05], atol=1e-12)
    np.testing.assert_allclose(ccv[:, 3], [0.0, 0.4415, 0.0], atol=1e-12)


def test_clear_auctions_winners_and_second_prices():
    winners, prices = clear_auctions(BIDS)
    assert winners.tolist() == WINNERS
    np.testing.assert_allclose(prices, [0.5, 0.4, 0.85])


def test_ties_go_to_the_lowest_index_and_the_twin_sets_the_price():
    # Clones at equilibrium bid the same: agent 0 wins and pays its twin's bid, which equals its own.
    bids = np.array([[0.7, 0.7, 0.3], [0.2, 0.6, 0.6]])
    winners, prices = clear_auctions(bids)
    assert winners.tolist() == [0, 1]
    np.testing.assert_allclose(prices, [0.7, 0.6])
    ccv = episode_utilities(bids, [0.0, 1.0], [GAMMA, GAMMA], "ccv")
    np.testing.assert_allclose(ccv, [[GAMMA * 0.6 - 0.7, 0, 0], [0, 1.0 - 0.6, 0]], atol=1e-12)


def test_one_agent_society_pays_nothing():
    # A lone bidder always wins at price 0; at step 1 the lookahead is 0 (last step).
    bids = np.array([[0.3], [0.6]])
    rewards, discounts = [1.0, 2.0], [0.9, 0.9]
    expected = {
        "ccv": [1.0 + 0.9 * 0.0 - 0.0, 2.0],  # P_1 = 0: nobody else bid
        "v": [1.0 + 0.9 * 0.6 - 0.0, 2.0],
        "bb": [1.0 + 0.9 * 0.6 - 0.3, 2.0 - 0.6],
        "env": [1.0, 2.0],
    }
    for auction, winner_utility in expected.items():
        utilities = episode_utilities(bids, rewards, discounts, auction)
        np.testing.assert_allclose(utilities[:, 0], winner_utility, atol=1e-12, err_msg=auction)


def test_dropout_mask_excludes_agents_from_winning_and_pricing():
    # Agent 0 bids highest but sits out: agent 1 wins against agent 2's price.
    bids = np.array([[0.9, 0.5, 0.2], [0.1, 0.8, 0.7]])
    active = np.array([[False, True, True], [False, True, True]])
    utilities = episode_utilities(bids, [0.0, 1.0], [GAMMA, GAMMA], "ccv", active=active)
    np.testing.assert_allclose(utilities, [[0, GAMMA * 0.7 - 0.2, 0], [0, 1.0 - 0.7, 0]], atol=1e-12)


def test_inactive_bids_may_be_nan():
    bids = np.array([[np.nan, 0.4, 0.1]])
    active = np.array([[False, True, True]])
    utilities = episode_utilities(bids, [1.0], [GAMMA], "bb", active=active)
    np.testing.assert_allclose(utilities, [[0.0, 1.0 - 0.4, 0.0]])


def test_multi_step_option_discounts_the_lookahead_by_its_duration():
    # Step 0 is an option that ran 3 env steps (g_0 = gamma^3), step 1 a one-step primitive.
    bids = np.array([[0.6, 0.4], [0.2, 0.5]])
    rewards = [0.5, 0.0]
    discounts = [GAMMA**3, GAMMA]
    ccv = episode_utilities(bids, rewards, discounts, "ccv")
    v = episode_utilities(bids, rewards, discounts, "v")
    bb = episode_utilities(bids, rewards, discounts, "bb")
    np.testing.assert_allclose(ccv, [[0.5 + GAMMA**3 * 0.2 - 0.4, 0], [0, -0.2]], atol=1e-12)
    np.testing.assert_allclose(v, [[0.5 + GAMMA**3 * 0.5 - 0.4, 0], [0, -0.2]], atol=1e-12)
    np.testing.assert_allclose(bb, [[0.5 + GAMMA**3 * 0.5 - 0.6, 0], [0, -0.5]], atol=1e-12)


def test_single_step_episode_has_no_lookahead():
    bids = np.array([[0.3, 0.8, 0.5]])
    for auction, expected in {"ccv": 0.6 - 0.5, "v": 0.6 - 0.5, "bb": 0.6 - 0.8, "env": 0.6}.items():
        utilities = episode_utilities(bids, [0.6], [GAMMA], auction)
        np.testing.assert_allclose(utilities, [[0.0, expected, 0.0]], atol=1e-12, err_msg=auction)


@pytest.mark.parametrize("auction, first_payment", [("ccv", "price"), ("bb", "bid")])
def test_credit_conserving_auctions_telescope(auction, first_payment):
    # Discounted utilities sum to the discounted env return minus what the first winner paid:
    # each winner receives (up to discount) exactly what the next winner pays.
    rng = np.random.default_rng(0)
    for _ in range(50):
        steps, agents = rng.integers(1, 12), rng.integers(1, 6)
        bids = rng.random((steps, agents))
        active = rng.random((steps, agents)) < 0.7
        active[np.arange(steps), rng.integers(0, agents, steps)] = True
        rewards = rng.normal(size=steps)
        discounts = GAMMA ** rng.integers(1, 4, steps)
        utilities = episode_utilities(bids, rewards, discounts, auction, active=active)
        weights = np.concatenate([[1.0], np.cumprod(discounts)[:-1]])
        winners, prices = clear_auctions(bids, active)
        paid = prices[0] if first_payment == "price" else bids[0, winners[0]]
        assert np.isclose(weights @ utilities.sum(axis=1), weights @ rewards - paid)


def test_vickrey_does_not_conserve_credit():
    utilities = episode_utilities(BIDS, REWARDS, DISCOUNTS, "v")
    weights = GAMMA ** np.arange(3)
    assert not np.isclose(weights @ utilities.sum(axis=1), weights @ REWARDS - 0.5)


def test_unknown_auction_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'vickrey'.*allowed: v, ccv, bb, env"):
        episode_utilities(BIDS, REWARDS, DISCOUNTS, "vickrey")


def test_bad_shapes_and_empty_steps_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        episode_utilities(BIDS, REWARDS[:2], DISCOUNTS, "ccv")
    with pytest.raises(ValueError, match="active"):
        episode_utilities(BIDS, REWARDS, DISCOUNTS, "ccv", active=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="at least one active agent"):
        clear_auctions(np.array([[0.1, 0.2]]), np.array([[False, False]]))
