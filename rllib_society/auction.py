"""Auction maths of the society (Chang et al. 2020, spec section 2): who wins, what they pay,
and every agent's utility over a recorded episode. Pure numpy, no Ray, so it is testable alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Auction names: Vickrey, credit-conserving Vickrey, bucket brigade, env reward only.
AUCTIONS = ("v", "ccv", "bb", "env")
#: What agent dropout removes together: one bidder, or a primitive with all its clones.
DROPOUT_UNITS = ("agent", "primitive")
#: Which bids price the state a seller sells: the sampled bids (the paper's), or the bidders'
#: mean bids (`auction_outcomes`).
LOOKAHEADS = ("sampled", "mean")


def clear_auctions(
    bids: np.ndarray, active: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Finds each auction's winner and second price.

    Args:
        bids: (T, A) bids of A agent ids at T auction steps. Bids of inactive agents are ignored
            (they may be NaN).
        active: optional (T, A) boolean mask; False = the agent sits out (cannot win, sets no price).

    Returns:
        winners: (T,) index of the highest active bid, ties going to the lowest index.
        prices: (T,) highest active bid among the other agents; 0 when only the winner is active.

    Raises:
        ValueError: on a shape mismatch or a step with no active agent.
    """
    bids = np.asarray(bids, dtype=np.float64)
    if bids.ndim != 2:
        raise ValueError(f"`bids` must be a (T, A) array, got shape {bids.shape}.")
    active = _active_mask(active, bids.shape)
    if not active.any(axis=1).all():
        raise ValueError("Every auction step needs at least one active agent.")
    masked = np.where(active, bids, -np.inf)
    winners = masked.argmax(axis=1)  # argmax returns the first maximum: ties go to the lowest index
    steps = np.arange(len(bids))
    masked[steps, winners] = -np.inf
    prices = masked.max(axis=1, initial=-np.inf)
    prices = np.where(np.isfinite(prices), prices, 0.0)
    return winners, prices


class Outcomes(NamedTuple):
    """What each auction of an episode settled (`auction_outcomes`), all (T,) arrays."""

    winners: np.ndarray  # who acts: the highest active bidder, or the offered bidder who bought
    paid: np.ndarray  # what the winner pays: the second price (its own bid in ``bb``), or the offer's price
    received: np.ndarray  # what the state's seller (the previous winner) is paid: the usual clearing price
    usual_received: np.ndarray  # the usual clearing price over the sampled bids (= received unless priced by mean bids)
    usual_paid: np.ndarray  # what the winner of the usual auction, over all active bids, would pay
    bought: np.ndarray  # bool: an offer accepted (a scored offer always is)
    scored: np.ndarray  # (T, A) bool: the bidders scored on their bids (a scored offer's primitive's clones)
    bids: np.ndarray  # (T, A) the bids


def auction_outcomes(bids: np.ndarray, active: np.ndarray | None = None, auction: str = "ccv",
                     offered: np.ndarray | None = None, offer_prices: np.ndarray | None = None,
                     scored: np.ndarray | None = None, clones: int = 1,
                     lookahead_bids: np.ndarray | None = None) -> Outcomes:
    """Who wins each auction and what changes hands, with exploration offers or without.

    The usual auction: the highest active bid wins and pays the second price (``v``, ``ccv``;
    0 for a lone bidder) or its own bid (``bb``); the state's seller receives the second price
    (``ccv``) or the winning bid (``v``, ``bb``).

    An exploration auction (random-price offer, the Becker-DeGroot-Marschak mechanism) offers
    the state to one bidder ``offered[t]`` at ``offer_prices[t]``: if its bid is at least the
    price it buys (wins and pays the price), else the usual auction runs without it. Either
    way the seller receives the usual clearing price over all active bids, so nobody's
    incentive but the offered bidder's changes, and the offered bidder's expected utility over
    a uniform price, the integral of (v - p) dp for p up to its bid b, is largest at b = v.

    A scored offer (``scored[t]``) draws no price: the offered bidder always acts, pays nothing,
    and it and every other active clone of its primitive (bidders ``k * clones + c``) earn
    -(b - v)^2 / 2 for their bids b, v being the step's value to the primitive (reward plus
    discounted next price, in bid units): the offer's expected utility over p ~ U[0, 1],
    b * v - b^2 / 2, less v^2 / 2, which no bid changes; again largest at b = v
    (`outcome_utilities` settles it once v is known).

    With ``lookahead_bids`` (``lookahead: mean``: the bidders' mean bids), the seller receives
    the clearing price over those instead of over the sampled bids, which still decide who
    wins and what the buyer pays; the difference goes to the market. The price a bidder's state
    sells for never depends on its own bid for the state it buys, so bidding its value stays
    dominant; with two clones or more per primitive, the second-highest mean bid is the highest
    primitive's mean, so at the truthful equilibrium a state sells for max_k Q(s', k) (Bellman's
    optimality) rather than for the second-highest of noisy samples, whose bias grows with the
    bids' spread.

    Args:
        bids, active: as `clear_auctions`. auction: one of ``AUCTIONS`` (``env`` prices as ``ccv``).
        offered: optional (T,) bidder offered each state, -1 where there is no offer.
        offer_prices: (T,) the offers' prices (ignored where there is no offer or it is scored).
        scored: optional (T,) bool, the scored offers (else random-price ones).
        clones: bidders per primitive (a scored offer scores them all).
        lookahead_bids: optional (T, A) bids that price each state for its seller (`LOOKAHEADS`).
    """
    bids = np.asarray(bids, dtype=np.float64)
    active = _active_mask(active, bids.shape)
    steps = np.arange(len(bids))
    winners, seconds = clear_auctions(bids, active)
    winning_bids = bids[steps, winners]
    usual_paid = winning_bids if auction == "bb" else seconds
    usual_received = received = seconds if auction in ("ccv", "env") else winning_bids
    if lookahead_bids is not None:
        lookahead_bids = np.asarray(lookahead_bids, dtype=np.float64)
        if lookahead_bids.shape != bids.shape:
            raise ValueError(f"`lookahead_bids` must have the shape of `bids` {bids.shape}, got {lookahead_bids.shape}.")
        top, second = clear_auctions(lookahead_bids, active)
        received = second if auction in ("ccv", "env") else lookahead_bids[steps, top]
    paid, bought, scored_ = usual_paid.copy(), np.zeros(len(bids), dtype=bool), np.zeros(bids.shape, dtype=bool)
    if offered is not None:
        offered = np.asarray(offered, dtype=np.int64)
        offer_prices = np.asarray(offer_prices, dtype=np.float64)
        if offered.shape != (len(bids),) or offer_prices.shape != (len(bids),):
            raise ValueError(f"`offered` and `offer_prices` must have shape ({len(bids)},); got {offered.shape} "
                             f"and {offer_prices.shape}.")
        explored = offered >= 0
        if (explored & ~active[steps, np.maximum(offered, 0)]).any():
            raise ValueError("An offer went to a bidder who sits out.")
        offered_bids = bids[steps, np.maximum(offered, 0)]
        scored_steps = explored & (False if scored is None else np.asarray(scored, dtype=bool))
        scored_ = scored_steps[:, None] & active & (np.arange(bids.shape[1]) // clones == offered[:, None] // clones)
        bought = explored & (scored_steps | (offered_bids >= offer_prices))
        declined = explored & ~bought
        winners, paid = winners.copy(), np.where(bought, np.where(scored_steps, 0.0, offer_prices), paid)
        winners[bought] = offered[bought]
        if declined.any():
            without = active[declined].copy()
            without[np.arange(len(without)), offered[declined]] = False
            others, others_seconds = clear_auctions(bids[declined], without)
            winners[declined] = others
            paid[declined] = bids[declined][np.arange(len(others)), others] if auction == "bb" else others_seconds
    return Outcomes(winners, paid, received, usual_received, usual_paid, bought, scored_, bids)


def settle_auction(bids: np.ndarray, active: np.ndarray, auction: str = "ccv", offered: int = -1,
                   offer_price: float = 0.0, scored: bool = False) -> tuple[int, float, bool]:
    """One auction of `auction_outcomes` as the env steps it: (who acts, what it pays, whether
    an offer was bought). The env settles every step alone, before the next bids exist, so this
    scalar form saves the vectorized one's set-up; the utilities, which need the next auction,
    come from `auction_outcomes` over the episode's records.

    Args:
        bids, active: (A,) bids and the mask of bidders taking part (inactive bids are ignored).
        auction: one of ``AUCTIONS``. offered, offer_price, scored: the step's exploration
            offer (offered -1: none), as `auction_outcomes` takes them.
    """
    if offered >= 0 and (scored or bids[offered] >= offer_price):
        return int(offered), 0.0 if scored else float(offer_price), True
    masked = np.where(active, bids, -np.inf)
    if offered >= 0:  # declined: the usual auction runs without the offered bidder
        masked[offered] = -np.inf
    winner = int(masked.argmax())  # the first maximum: ties go to the lowest index
    if masked[winner] == -np.inf:
        raise ValueError("Every auction step needs at least one active agent.")
    masked[winner] = -np.inf
    second = masked.max()
    paid = float(bids[winner]) if auction == "bb" else float(second) if second > -np.inf else 0.0
    return winner, paid, False


def episode_utilities(
    bids: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    auction: str,
    active: np.ndarray | None = None,
    offered: np.ndarray | None = None,
    offer_prices: np.ndarray | None = None,
    scored: np.ndarray | None = None,
    clones: int = 1,
    lookahead_bids: np.ndarray | None = None,
) -> np.ndarray:
    """Every agent's utility at every auction step of one episode (spec section 2).

    The winner w_t of step t gets, with p_t its second price, B_{t+1} and P_{t+1} the next step's
    winning bid and second price (both 0 after the last step) and g_t the step's discount:

    - ``v``:   r_t + g_t * B_{t+1} - p_t
    - ``ccv``: r_t + g_t * P_{t+1} - p_t
    - ``bb``:  r_t + g_t * B_{t+1} - b_t^{w_t}
    - ``env``: r_t

    Losers (and agents sitting out) get 0. With exploration offers (`auction_outcomes`), an
    offered bidder who buys is the winner and pays the offer's price instead; a scored offer's
    bidder and the other clones of its primitive get -(b - v_t)^2 / 2 for their bids b,
    v_t = r_t + g_t * L_{t+1} being the value of the step (L_{t+1} the lookahead above).
    B_{t+1} and P_{t+1} stay the usual auction's, over all active bids; with ``lookahead_bids``
    (``lookahead: mean``) they are taken over those bids instead.

    Args:
        bids: (T, A) bids, T auction steps of A agent ids.
        rewards: (T,) reward of each step's winning transformation (for an option lasting L env
            steps, its discounted env return).
        discounts: (T,) discount of each step, gamma ** duration.
        auction: one of ``AUCTIONS``.
        active: optional (T, A) boolean mask of the agents taking part at each step.
        offered, offer_prices, scored, clones: optional exploration offers (`auction_outcomes`).
        lookahead_bids: optional (T, A) bids that price each state for its seller (`auction_outcomes`).

    Returns:
        (T, A) float64 utilities.

    Raises:
        ValueError: on an unknown auction or inconsistent shapes.
    """
    if auction not in AUCTIONS:
        raise ValueError(f"Unknown auction {auction!r}; allowed: {', '.join(AUCTIONS)}.")
    bids = np.asarray(bids, dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64)
    discounts = np.asarray(discounts, dtype=np.float64)
    if bids.ndim != 2 or rewards.shape != (len(bids),) or discounts.shape != (len(bids),):
        raise ValueError(
            f"Expected bids (T, A) with rewards and discounts of shape (T,); got bids {bids.shape}, "
            f"rewards {rewards.shape}, discounts {discounts.shape}."
        )
    outcomes = auction_outcomes(bids, active, auction, offered, offer_prices, scored, clones, lookahead_bids)
    return outcome_utilities(outcomes, bids.shape, rewards, discounts, auction)


def outcome_utilities(outcomes: Outcomes, shape: tuple[int, int], rewards: np.ndarray, discounts: np.ndarray,
                      auction: str) -> np.ndarray:
    """The (T, A) utilities of settled auctions (`episode_utilities`, whose formulas they are)."""
    utilities = np.zeros(shape)
    if auction == "env":
        utilities[np.arange(shape[0]), outcomes.winners] = rewards
        return utilities
    values = winner_values(outcomes, rewards, discounts)
    utilities[np.arange(shape[0]), outcomes.winners] = values - outcomes.paid
    steps, bidders = np.nonzero(outcomes.scored)
    utilities[steps, bidders] = -(outcomes.bids[steps, bidders] - values[steps]) ** 2 / 2
    return utilities


def winner_values(outcomes: Outcomes, rewards: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """(T,) what each step's state was worth to its winner: its reward plus the discounted price
    the next winner pays for the state it produced (0 after the last step)."""
    rewards, discounts = np.asarray(rewards, dtype=np.float64), np.asarray(discounts, dtype=np.float64)
    lookahead = np.append(outcomes.received[1:], 0.0)  # u_t needs step t+1's bids
    return rewards + discounts * lookahead


def market_balance(outcomes: Outcomes, rewards: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    """(T,) what the market keeps at each step against the usual auction: an offer's price (or,
    for a scored offer, the value v of the step and the losses (b - v)^2 / 2 its scored bidders
    pay) less what the usual auction's winner would have paid (0 at steps without an offer),
    plus, when mean bids price the state (``lookahead_bids``), the usual clearing price less what
    the seller receives (from step 1 on: the first state has no seller)."""
    values = winner_values(outcomes, rewards, discounts)
    losses = np.where(outcomes.scored, (np.nan_to_num(outcomes.bids) - values[:, None]) ** 2 / 2, 0.0).sum(axis=1)
    kept = np.where(outcomes.scored.any(axis=1), values + losses, outcomes.paid)
    diverted = outcomes.usual_received - outcomes.received
    diverted[:1] = 0.0
    return kept - outcomes.usual_paid + diverted


def _active_mask(active: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if active is None:
        return np.ones(shape, dtype=bool)
    active = np.asarray(active, dtype=bool)
    if active.shape != shape:
        raise ValueError(f"`active` must have the shape of `bids` {shape}, got {active.shape}.")
    return active
