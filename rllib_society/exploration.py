"""Exploration inside the auction: offers to one bidder, at a random price (the
Becker-DeGroot-Marschak mechanism) or scored on its bid (a proper scoring rule), and a count
bonus (optimism that fades as the states are revisited).

A loser's utility is 0 whatever it bids, so in the usual auction nothing pulls a loser's bid
toward its value, and a bid that went stale stays stale. With probability ``rate`` an auction is
an exploration auction instead: one primitive, drawn uniformly among those with an active
bidder, is offered the state through one of its active clones (drawn uniformly) at a price p
drawn uniformly from the bid range [0, 1]. If that bid is at least p, the bidder buys: its
primitive acts, it pays p and earns the usual lookahead; otherwise the usual auction runs
without it (`auction.auction_outcomes` settles both).

Why truthful bids stay an equilibrium (the auction's Q* stays the fixed point):
- The offered bidder, whose value for the state is v, earns v - p when b >= p and 0 otherwise,
  so its expected utility over the price is the integral of (v - p) dp for p from 0 to b, which
  is largest at b = v, whatever the others bid. A stale loser thus earns on the offers it
  accepts and its bid moves toward v from any starting point.
- When it declines, the others face the usual auction among themselves, where truthful bids
  are dominant as before; whether it declines does not depend on their bids.
- The state's seller (the previous winner) is paid the usual clearing price over all bids,
  offer or not, so its value for the state it sells, and with it every lookahead, is what it
  is without exploration. The price p goes to the market, not to a primitive: its balance (p
  minus what the usual auction's winner would have paid) is reported.

A scored offer (kind ``scored``) draws no price: the offered bidder always acts, and it and
the other clones of its primitive (who share its value) each earn -(b - v)^2 / 2, the square
loss of their bid against the value v of the step (reward plus discounted next price). That is
the random-price offer's expected utility over p ~ U[0, 1], b * v - b^2 / 2, less v^2 / 2,
which no bid changes.
Why truthful bids stay an equilibrium: who acts does not depend on any bid, the others earn 0
and the seller is paid the usual clearing price as above, and the loss is smallest at b = v for
every v (at b = E[v], the bidder's value, in expectation). A bidder cannot tell an exploration
auction from a usual one, so its expected utility mixes two functions of its bid that both
peak at its value, and peaks there too.
Why it learns faster than random prices: a stale bidder learns from every offer, not only from
those whose price falls below its bid, and the utility is centred: PPO's baseline sees only the
state, so a reward far from 0 on the few offer rows (v - p, or b * v - b^2 / 2) is noise in the
advantages of all the usual rows of that state, where a loser earns 0; the square loss is
near 0 where the bid is near truthful. Measured in docs/results.md. Far from truthful it is
not: with ``baseline: expected`` the fast learner gives a scored row its own baseline, the square
loss's expectation under the bid distribution it was sampled from (`chunk_connector`), the same
expected gradient with less noise (and the same fixed point: the reward is unchanged). With
``scored_loss: mean`` the fast learner does not train a scored row by PPO at all: it fits the
row's mean bid m to the step's value v by the loss (m - v)^2 / (2 s^2), s^2 the bid's variance
held constant (`learner.mean_fit_loss`), the natural gradient of the scored utility's
expectation. PPO moves a mean a fraction of the bid's spread per update, and a bid pinned at
the edge of the range has almost none (Taxi's drop-off); the fit moves it whatever its spread.
Why truthful bids stay an equilibrium: the auction and every utility are unchanged (only how
the offered bidder learns from its row), and the fit is smallest at m = E[v], the same fixed
point as the scored utility's.

A count bonus (``bonus`` b > 0, with any kind) is optimism that directs the search: the market
pays the winner b / sqrt(n) env reward units for the n-th time its primitive acts in a state
(`AuctionEnv.count_bonus`; Discrete states, counted by each env over its episodes). Offers teach
a stale bidder its value where the society goes; the bonus makes the society go where it has
seldom been, as a society that never reaches the goal otherwise loops (CliffWalking).
Why truthful bids stay an equilibrium: the bonus is part of the step's reward, paid whoever wins
and whatever anyone bid, so the auction is the paper's auction on the env whose reward is r plus
the bonus, where bidding one's value is dominant as before. Its values are Q* of that reward,
which tends to Q* as the counts grow and the bonus fades (Q* plus at most b / (1 - gamma) /
sqrt(n) where every pair ahead was tried n times). The market's payments are reported
(``bonus_paid``).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rllib_society.errors import FieldError

#: Exploration mechanisms inside the auction: none, random-price offers, scored offers.
EXPLORATION_KINDS = ("none", "offers", "scored")
#: A scored row's baseline in the fast learner's advantage: the critic's value of the state (as
#: every other row's), or the scored utility's expectation under the bid distribution it was
#: sampled from (`chunk_connector.expected_square_loss`).
SCORED_BASELINES = ("state", "expected")
#: How the fast learner trains a scored row: PPO on its utility, as every other row, or a fit of
#: the bid's mean to the step's value, scaled by the bid's variance (`learner.mean_fit_loss`).
SCORED_LOSSES = ("ppo", "mean")
#: No exploration (the paper's auction).
NO_EXPLORATION: dict[str, Any] = {"kind": "none", "rate": 0.0, "bonus": 0.0, "baseline": "state", "scored_loss": "ppo"}


def exploration_settings(value: Any) -> dict[str, Any]:
    """The ``exploration`` setting checked and completed: None or ``{"kind": "none"}`` (no
    exploration), or ``{"kind": "offers" or "scored", "rate": r}`` with r in [0, 1], and
    ``bonus`` b >= 0 (default 0) with any kind. r and b may be schedules ``[[env_steps, x], ...]``
    as RLlib's ``lr`` takes (piecewise linear in the algorithm's env steps sampled, from step 0;
    `scheduled_rate`). ``baseline`` (scored offers; `SCORED_BASELINES`): ``state`` (default)
    or ``expected``. ``scored_loss`` (scored offers; `SCORED_LOSSES`): ``ppo`` (default) or
    ``mean``.

    Raises:
        FieldError: naming ``exploration``, ``exploration.kind``, ``exploration.rate``,
            ``exploration.bonus``, ``exploration.baseline`` or ``exploration.scored_loss``.
    """
    if value is None:
        return dict(NO_EXPLORATION)
    if not isinstance(value, dict):
        raise FieldError("exploration", value, "None or a dict {kind: offers, rate: 0.1}")
    unknown = sorted(set(value) - set(NO_EXPLORATION))
    if unknown:
        raise FieldError("exploration", value,
                         f"a dict with the keys {', '.join(NO_EXPLORATION)} (not {', '.join(unknown)})")
    kind = value.get("kind", "offers")
    if kind not in EXPLORATION_KINDS:
        raise FieldError("exploration.kind", kind, "one of " + ", ".join(EXPLORATION_KINDS))
    rate = _number_or_schedule("exploration.rate", value.get("rate", 0.0 if kind == "none" else None), 1.0,
                               "a probability in [0, 1] (the share of exploration auctions)")
    if kind == "none" and rate:
        raise FieldError("exploration.rate", rate, "0 with exploration.kind: none")
    bonus = _number_or_schedule("exploration.bonus", value.get("bonus", 0.0), math.inf,
                                "a number >= 0 (env reward units: the count bonus bonus / sqrt(n) for the n-th "
                                "time a primitive acts in a state)")
    baseline = value.get("baseline", "state")
    if baseline not in SCORED_BASELINES:
        raise FieldError("exploration.baseline", baseline, "one of " + ", ".join(SCORED_BASELINES))
    if baseline != "state" and kind != "scored":
        raise FieldError("exploration.baseline", baseline, "state unless exploration.kind is scored")
    scored_loss = value.get("scored_loss", "ppo")
    if scored_loss not in SCORED_LOSSES:
        raise FieldError("exploration.scored_loss", scored_loss, "one of " + ", ".join(SCORED_LOSSES))
    if scored_loss != "ppo" and (kind != "scored" or baseline != "state"):
        raise FieldError("exploration.scored_loss", scored_loss,
                         "ppo unless exploration.kind is scored and exploration.baseline is state (a fitted "
                         "row's advantage is not used)")
    return {"kind": kind, "rate": rate, "bonus": bonus, "baseline": baseline, "scored_loss": scored_loss}


def _number_or_schedule(field: str, value: Any, most: float, allowed: str) -> float | list[list]:
    """`value` as a float in [0, most], or as a schedule [[env_steps, x], ...] of such floats."""
    is_number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)  # noqa: E731
    if is_number(value) and 0.0 <= value <= most and math.isfinite(value):
        return float(value)
    schedule = "a schedule [[0, x0], [env_steps, x1], ...]: env steps from 0, increasing"
    if not isinstance(value, (list, tuple)):
        raise FieldError(field, value, f"{allowed}, or {schedule}")
    points = [[int(p[0]), float(p[1])] for p in value
              if isinstance(p, (list, tuple)) and len(p) == 2 and all(map(is_number, p))]
    steps = [p[0] for p in points]
    if not points or len(points) != len(value) or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:])) \
            or not all(0.0 <= p[1] <= most for p in points):
        raise FieldError(field, value, f"{schedule}, each x {allowed}")
    return points


def check_bonus(bonus: float | list, observation_space: gym.Space) -> None:
    """Raises `FieldError` for a count bonus on an env whose states are not Discrete (the bonus
    counts each state's visits)."""
    if bonus and not isinstance(observation_space, gym.spaces.Discrete):
        raise FieldError("exploration.bonus", bonus, "0 for an env whose states are not Discrete "
                                                     "(the bonus counts visits of each state)")


def scheduled_rate(rate: float | list, env_steps: int) -> float:
    """The share of exploration auctions (or the bonus) after `env_steps` env steps sampled: a
    constant, or a schedule's, interpolated linearly and held after its last point (as RLlib's)."""
    if not isinstance(rate, list):
        return rate
    steps, rates = zip(*rate)
    return float(np.interp(env_steps, steps, rates))


def logistic_price(uniform: float, location: float, scale: float) -> float:
    """The price of a random-price offer when bids lie on the real line (``value_range:
    adaptive``): the logistic quantile of `uniform` around the society's value location and
    scale. Any price density that is positive everywhere keeps the offer truthful: the offered
    bidder's expected utility, the integral of (v - p) f(p) dp for p up to b, has derivative
    (v - b) f(b), zero only at b = v, where it is largest."""
    uniform = min(max(uniform, 1e-12), 1.0 - 1e-12)
    return location + scale * math.log(uniform / (1.0 - uniform))


def offerable_bidders(active: np.ndarray, clones: int) -> list[np.ndarray]:
    """The bidders an offer can go to, by primitive: each primitive with an active bidder, as the
    array of its active bidders (bidder k * clones + c). Drawn once per episode (`draw_offer`)."""
    by_primitive = np.asarray(active, dtype=bool).reshape(-1, clones)
    return [k * clones + np.flatnonzero(row) for k, row in enumerate(by_primitive) if row.any()]


def draw_offer(rng: np.random.Generator, offerable: list[np.ndarray], rate: float) -> tuple[int, float]:
    """An exploration offer with probability `rate`: (offered bidder, price), the bidder one of
    the active clones (drawn uniformly) of a primitive drawn uniformly among those with an
    active bidder (`offerable_bidders`), the price uniform in [0, 1]; else (-1, 0.0) (no offer;
    its price is ignored)."""
    if rate <= 0.0 or rng.random() >= rate:
        return -1, 0.0
    bidders = offerable[rng.integers(len(offerable))]
    return int(bidders[rng.integers(len(bidders))]), float(rng.random())
