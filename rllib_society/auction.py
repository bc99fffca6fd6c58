"""Auction maths of the society (Chang et al. 2020, spec section 2): who wins, what they pay,
and every agent's utility over a recorded episode. Pure numpy, no Ray, so it is testable alone.
"""

from __future__ import annotations

import numpy as np

#: Auction names: Vickrey, credit-conserving Vickrey, bucket brigade, env reward only.
AUCTIONS = ("v", "ccv", "bb", "env")
#: What agent dropout removes together: one bidder, or a primitive with all its clones.
DROPOUT_UNITS = ("agent", "primitive")


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


def episode_utilities(
    bids: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    auction: str,
    active: np.ndarray | None = None,
) -> np.ndarray:
    """Every agent's utility at every auction step of one episode (spec section 2).

    The winner w_t of step t gets, with p_t its second price, B_{t+1} and P_{t+1} the next step's
    winning bid and second price (both 0 after the last step) and g_t the step's discount:

    - ``v``:   r_t + g_t * B_{t+1} - p_t
    - ``ccv``: r_t + g_t * P_{t+1} - p_t
    - ``bb``:  r_t + g_t * B_{t+1} - b_t^{w_t}
    - ``env``: r_t

    Losers (and agents sitting out) get 0.

    Args:
        bids: (T, A) bids, T auction steps of A agent ids.
        rewards: (T,) reward of each step's winning transformation (for an option lasting L env
            steps, its discounted env return).
        discounts: (T,) discount of each step, gamma ** duration.
        auction: one of ``AUCTIONS``.
        active: optional (T, A) boolean mask of the agents taking part at each step.

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
    winners, prices = clear_auctions(bids, active)
    steps = np.arange(len(bids))
    winning_bids = bids[steps, winners]

    if auction == "env":
        utility = rewards
    else:
        # u_t needs step t+1's bids: the next winner buys the state this winner produced.
        received = prices if auction == "ccv" else winning_bids
        paid = winning_bids if auction == "bb" else prices
        lookahead = np.append(received[1:], 0.0)  # nobody buys the state after the last step
        utility = rewards + discounts * lookahead - paid

    utilities = np.zeros(bids.shape)
    utilities[steps, winners] = utility
    return utilities


def _active_mask(active: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if active is None:
        return np.ones(shape, dtype=bool)
    active = np.asarray(active, dtype=bool)
    if active.shape != shape:
        raise ValueError(f"`active` must have the shape of `bids` {shape}, got {active.shape}.")
    return active
