"""The auction as a gymnasium env whose action is the vector of all bids: every bidder bids for
the state, the highest bidder's primitive acts on a wrapped gymnasium env (spec section 1).

Each env action is a primitive; each primitive bids through `clones` bidders that share its
policy. This is the society's core: the multi-agent `SocietyEnv` steps one with the bids of its
agent ids, and the fast path's `SocietyEnvRunner` steps a vector of them with whole bid vectors.
The reward is the env reward in bid units (`value_range`); the info holds the auction record
(`AUCTION_INFO`), from which the exact utilities are computed once the next step's bids are known.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rllib_society.auction import auction_outcomes, market_balance, outcome_utilities, settle_auction, winner_values
from rllib_society.errors import FieldError
from rllib_society.exploration import (check_bonus, draw_offer, exploration_settings, logistic_price, offerable_bidders,
                                      scheduled_rate)
from rllib_society.observations import bidder_observation, bidder_observation_space
from rllib_society.options import (INNER_AUCTIONS, OPTION_DISCOUNT, OPTION_RETURN, OPTION_STEPS, OptionsEnv,
                                   load_option, option_observation_function)
from rllib_society.q_values import options_q_values
from rllib_society.value_range import (
    bid_reward, check_value_range, default_value_range, is_adaptive, retired_reward_scale,
)

#: Key of the auction record in each step's info dict.
AUCTION_INFO = "auction"
#: Key of the episode summary, added to the auction record of an episode's last step.
EPISODE_INFO = "episode"
#: What a time-limit cut means: the end of the task (lookahead 0, the paper's code), or only a
#: cut (the cut auction is paid the next state's price, as if the episode went on).
TRUNCATIONS = ("end", "bootstrap")

DEFAULT_SOCIETY_CONFIG: dict[str, Any] = {
    "env": None,  # required: the extension registers no env of its own
    "env_config": {},
    "auction": "ccv",
    "clones": 2,
    "dropout": 0.0,
    "dropout_unit": "agent",
    "gamma": 0.99,
    "value_range": None,
    "truncation": "end",
    "lookahead": "sampled",
    "exploration": None,
    "eval_episodes": 1,
    "eval_interval": 1,
    "eval_max_steps": None,
    "options": [],
    "option_done_action": None,
    "option_max_steps": None,
    "option_bids": "greedy",
    "option_observation": None,
}


def record_utilities(records: list[dict[str, Any]], auction: str, clones: int) -> np.ndarray:
    """(T, bidders) utilities of T consecutive auction records of one episode
    (`episode_utilities`): exact for every record but the last, whose lookahead is taken as 0,
    which is exact only when it ended the episode. A pricing auction (``truncation:
    bootstrap``) only prices the cut state: its own row is 0."""
    return record_settlement(records, auction, clones)[0]


def record_settlement(records: list[dict[str, Any]], auction: str, clones: int) -> tuple[np.ndarray, np.ndarray]:
    """`record_utilities`, and (T, bidders) the scored bidders' targets: the value of the step
    (`auction.winner_values`: reward plus discounted next price) for the bidders a scored offer
    scored, NaN for every other."""
    rewards, discounts = np.array([r["reward"] for r in records]), np.array([r["discount"] for r in records])
    outcomes = auction_outcomes(
        np.stack([r["bids"] for r in records]), np.stack([r["active"] for r in records]), auction,
        np.array([r.get("offer", -1) for r in records]), np.array([r.get("offer_price", 0.0) for r in records]),
        np.array([r.get("scored", False) for r in records]), clones, lookahead_bids(records),
    )
    utilities = outcome_utilities(outcomes, outcomes.bids.shape, rewards, discounts, auction)
    pricing = [bool(r.get("pricing")) for r in records]
    utilities[pricing] = 0.0
    targets = np.where(outcomes.scored, winner_values(outcomes, rewards, discounts)[:, None], np.nan)
    targets[pricing] = np.nan
    return utilities, targets


def lookahead_bids(records: list[dict[str, Any]]) -> np.ndarray | None:
    """The bids that priced each record's state for its seller (``lookahead: mean``: the mean
    bids), or None when the sampled bids did."""
    if not records or "lookahead_bids" not in records[0]:
        return None
    return np.stack([r["lookahead_bids"] for r in records])


def primitive_name(primitive: int) -> str:
    """The name of primitive k in metrics and plots: ``p{k}``."""
    return f"p{primitive}"


def check_env_id(env_id: Any) -> None:
    """Raises `FieldError` unless `env_id` is a gymnasium id (a non-empty string)."""
    if not isinstance(env_id, str) or not env_id:
        raise FieldError("env", env_id, "a gymnasium id with Discrete actions (or 'module:EnvId'), "
                                        "e.g. 'FrozenLake-v1'")


def make_base_env(env_id: str, env_config: dict | None = None) -> gym.Env:
    """Makes the wrapped env by gymnasium id (``module:EnvId`` ids import their module)."""
    check_env_id(env_id)
    return gym.make(env_id, **(env_config or {}))


def make_primitive_env(society_config: dict[str, Any]) -> gym.Env:
    """The env whose actions are the primitives: the wrapped env itself, or, with ``options``,
    the wrapped env with the pre-trained options for actions (`OptionsEnv`)."""
    config = {**DEFAULT_SOCIETY_CONFIG, **society_config}
    env = make_base_env(config["env"], config["env_config"])
    if not config["options"]:
        return env
    encode = lambda state: bidder_observation(state, env.observation_space)  # noqa: E731
    if config["option_observation"] is not None:
        encode = option_observation_function(config["option_observation"])
    policies = [o if hasattr(o, "act") else load_option(o, encode, config["option_bids"]) for o in config["options"]]
    return OptionsEnv(env, policies, config["option_done_action"], config["gamma"],
                      config["option_max_steps"])


class BaseEnv(gym.Wrapper):
    """The primitives' env alone (`make_primitive_env`), from the same config keys as
    `AuctionEnv`: RLlib's single-agent env for the monolithic baseline.

    With ``truncation: end`` (the default) a time-limit cut ends the episode as a termination,
    so PPO does not bootstrap there, as the society's utilities do (spec section 2: the
    lookahead is 0 at a cut; bootstrapping would also let an option that burns the clock look as
    good as the state it started from). With ``bootstrap`` the cut stays a truncation, which
    RLlib's PPO bootstraps with its value function.
    """

    def __init__(self, config: dict | None = None):
        config = {**DEFAULT_SOCIETY_CONFIG, **(config or {})}
        super().__init__(make_primitive_env(config))
        self.cut_ends_task = config["truncation"] == "end"

    def step(self, action):
        state, reward, terminated, truncated, info = self.env.step(action)
        if self.cut_ends_task:
            return state, reward, terminated or truncated, False, info
        return state, reward, terminated, truncated, info


def options_q_star(society_config: dict[str, Any]) -> np.ndarray | None:
    """Q* over the society's options, (1, states, options) in env units, when the env has a
    toy-text table `P` and is deterministic (one transition per state and action), and so are
    the options (frozen policies; society options bidding greedily): each option runs once from
    every state (`options_q_values`; the env's time limit is ignored); else None."""
    config = {**DEFAULT_SOCIETY_CONFIG, **society_config}
    env = make_primitive_env(config)
    table = getattr(env.unwrapped, "P", None)
    deterministic = table is not None and config["option_bids"] == "greedy" and all(
        len(transitions) == 1 for actions in table.values() for transitions in actions.values())
    if not deterministic:
        env.close()
        return None
    shape = (len(table), env.action_space.n)
    next_states, terminated = np.zeros(shape, int), np.zeros(shape, bool)
    rewards, discounts = np.zeros(shape), np.zeros(shape)
    for s, o in np.ndindex(shape):
        env.reset(seed=0)
        env.unwrapped.s = env.state = s  # toy-text envs keep their state in `s`
        next_states[s, o], rewards[s, o], terminated[s, o], _, info = env.step(o)
        discounts[s, o] = info[OPTION_DISCOUNT]
    env.close()
    return options_q_values(next_states, rewards, discounts, terminated)[None]


def resolve_value_range(society_config: dict[str, Any], env: gym.Env | None = None) -> tuple[float, float]:
    """The config's ``value_range`` checked, or when it is None the env's `default_value_range`,
    or over options [0, 1] widened to hold their Q* (`options_q_star`) when it is known.

    Raises:
        ValueError: on a bad range, or the retired ``reward_scale`` key.
    """
    if "reward_scale" in society_config:
        raise retired_reward_scale(society_config["reward_scale"])
    if society_config.get("value_range") is not None:
        return check_value_range(society_config["value_range"])
    if society_config.get("options"):
        q_star = options_q_star(society_config)
        if q_star is not None:
            return min(0.0, float(q_star.min())), max(1.0, float(q_star.max()))
    made = env is None
    env = make_base_env(society_config["env"], society_config["env_config"]) if made else env
    try:
        return default_value_range(env, society_config.get("gamma", DEFAULT_SOCIETY_CONFIG["gamma"]),
                                   society_config["env"], society_config.get("truncation", "end"))
    finally:
        if made:
            env.close()


def society_spaces(society_config: dict[str, Any]) -> tuple[int, gym.spaces.Box]:
    """How many primitives a society has (its options, else its env's actions) and what each
    bidder observes, without loading the options."""
    env = make_checked_env(society_config["env"], society_config["env_config"])
    try:
        count = len(society_config["options"]) if society_config.get("options") else int(env.action_space.n)
        return count, bidder_observation_space(env.observation_space)
    finally:
        env.close()


def make_checked_env(env_id: str, env_config: dict | None = None) -> gym.Env:
    """The wrapped env (`make_base_env`), checked to suit a society (`check_base_env`).

    Raises:
        FieldError: naming ``env`` when it cannot be made or does not suit a society, or
            ``env_config`` when the env refuses its arguments.
    """
    try:
        env = make_base_env(env_id, env_config)
    except (gym.error.Error, ModuleNotFoundError, AttributeError) as error:
        raise FieldError("env", env_id, f"a registered gymnasium id or 'module:EnvId' (gymnasium: {error})") from None
    except TypeError as error:
        raise FieldError("env_config", env_config, f"the arguments of env {env_id!r} ({error})") from None
    try:
        check_base_env(env, env_id)
    except ValueError:
        env.close()
        raise
    return env


def check_base_env(env: gym.Env, env_id: str) -> None:
    """Raises `FieldError` (a ValueError) unless the env's spaces suit a society: Discrete
    actions (one primitive each), Discrete (one-hot encoded) or Box observations."""
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise FieldError("env", env_id, f"an env with a Discrete action space (one primitive per action), not "
                                        f"{env.action_space}")
    if not isinstance(env.observation_space, (gym.spaces.Discrete, gym.spaces.Box)):
        raise FieldError("env", env_id, f"an env whose observation space is Discrete (one-hot encoded) or Box, "
                                        f"not {env.observation_space}")


class AuctionEnv(gym.Env):
    """A gymnasium env with a Discrete action space, run as an auction among bidders whose bids
    arrive together as one action.

    Config keys (``env_config`` of the RLlib config), defaults in `DEFAULT_SOCIETY_CONFIG`:
        env: gymnasium id of the wrapped env (required). env_config: its constructor arguments.
        auction: the auction whose utilities the episode summary reports (see `AUCTIONS`).
        clones: bidders per primitive (1 = solitary society).
        dropout: probability that a bidder sits out a whole episode (at most all but two do).
        dropout_unit: "agent" (each bidder on its own, the spec's) or "primitive" (a primitive's
            clones sit out together, so an active primitive always bids against its twin).
        gamma: the society's discount, applied inside the utilities.
        value_range: [lo, hi], the env values the bids 0 and 1 stand for (`value_range`
            module); None: `default_value_range` of the env; ``adaptive``: bids on the real line
            are values in env units (`rllib_society.value_scale`).
        truncation: "end" (a time-limit cut ends the task: the cut auction's lookahead is 0) or
            "bootstrap" (the cut state is priced: one more auction, whose bids only set the cut
            auction's lookahead, then the episode ends truncated; see `TRUNCATIONS`).
        lookahead: "sampled" (a state sells for the clearing price of the sampled bids, the
            paper's) or "mean" (of the bidders' mean bids, which the env runner sets as
            ``lookahead_bids`` before each step; see `auction_outcomes`).
        exploration: None (the paper's auction) or ``{"kind": k, "rate": r, "bonus": b}``: a share
            r of auctions offer the state to one bidder, at a random price (``offers``) or scored
            on its bid (``scored``), and a count bonus b (`count_bonus`); see
            `rllib_society.exploration`.
        eval_episodes: greedy evaluation episodes per iteration (read by the metrics callback).
        eval_interval: the greedy evaluation runs after every eval_interval-th iteration.
        eval_max_steps: env steps after which a greedy evaluation episode is cut and reported as
            timed out (None: the env's time limit, else 1,000).
        options: pre-trained options as the primitives instead of the env's actions: RLlib
            checkpoints of single-agent policies or of societies (whose primitives are the env's
            actions), or objects with ``act(obs) -> action``.
        option_done_action: the env action (or list of them) with which an option says it is done.
        option_max_steps: optional cap on one option's env steps (else the env's time limit).
        option_bids: how a society option bids: "greedy" (mean bids) or "sampled" (`OPTION_BIDS`).
        option_observation: what the options observe of a state, if not the state itself: a
            function's ``module:name`` (`options.option_observation_function`; e.g. Taxi's
            sub-task options see the taxi's cell only, ``envs.taxi_tasks:taxi_cell_observation``).

    Observations are the wrapped env's state (Discrete states one-hot). The action holds one bid
    in [0, 1] per bidder, bidder ``k * clones + c`` being clone c of primitive k; the bids of
    bidders sitting out are ignored. The reward is the env reward of the winner's primitive mapped
    to bid units (`bid_reward`); the info holds the auction record (`AUCTION_INFO`).
    """

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = {**DEFAULT_SOCIETY_CONFIG, **(config or {})}
        self.base_env = make_primitive_env(self.config)
        check_base_env(self.base_env, self.config["env"])
        self.value_range = resolve_value_range(self.config, self.base_env)
        #: Bids on the real line (``value_range: adaptive``), in env units.
        self.adaptive = is_adaptive(self.config["value_range"])
        #: (mu, sigma) of the society's values, which price a random-price offer when adaptive
        #: (the fast env runner sets it from its modules).
        self.value_scale = (0.0, 1.0)
        self.num_primitives = int(self.base_env.action_space.n)
        self.clones = int(self.config["clones"])
        self.num_bidders = self.num_primitives * self.clones
        self.observation_space = bidder_observation_space(self.base_env.observation_space)
        low, high = (-np.inf, np.inf) if self.adaptive else (0.0, 1.0)
        self.action_space = gym.spaces.Box(low, high, (self.num_bidders,), np.float32)
        self.active = np.ones(self.num_bidders, dtype=bool)
        self.pricing = False  # whether the next step is a cut's pricing auction
        self.exploration = exploration_settings(self.config["exploration"])
        #: The share of exploration auctions (greedy evaluation sets it to 0; the fast env runner
        #: follows a schedule's).
        self.exploration_rate = scheduled_rate(self.exploration["rate"], 0)
        #: With ``lookahead: mean``, the bidders' mean bids for the coming step (the fast env runner
        #: sets them; when unset, the step's own bids price the state).
        self.lookahead_bids: np.ndarray | None = None
        self.mean_lookahead = self.config["lookahead"] == "mean"
        #: The count bonus's scale (`count_bonus`; the fast env runner follows a schedule's) and how
        #: often each primitive acted in each state.
        check_bonus(self.exploration["bonus"], self.base_env.observation_space)
        self.bonus = scheduled_rate(self.exploration["bonus"], 0)
        self.counts: dict[tuple[int, int], int] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode of the wrapped env and draws which bidders sit it out (dropout)."""
        super().reset(seed=seed)  # seeds `np_random`, which draws the dropout
        state, _ = self.base_env.reset(seed=seed, options=options)
        self.active = self._sample_active()
        self._offerable = offerable_bidders(self.active, self.clones)
        self._history: dict[str, list] = {k: [] for k in ("bids", "rewards", "discounts", "env_r", "offers",
                                                           "offer_prices", "scored", "lookahead_bids", "bonus")}
        self._env_steps = 0
        self.pricing = False
        self.state = state
        return self._encode(state), {}

    def step(self, action: np.ndarray):
        """One auction: the highest active bid's primitive acts, or the offered bidder's if it
        buys an exploration offer (after a priced cut, nothing does); returns the next state, the
        reward in bid units and the auction record."""
        bids = np.asarray(action, dtype=np.float64).reshape(-1)
        bids = np.where(self.active, bids if self.adaptive else np.clip(bids, 0, 1), np.nan)
        offer, offer_price = (-1, 0.0) if self.pricing else draw_offer(
            self.np_random, self._offerable, self.exploration_rate)
        scored = offer >= 0 and self.exploration["kind"] == "scored"
        if offer >= 0 and self.adaptive and not scored:
            offer_price = logistic_price(offer_price, *self.value_scale)
        winner, paid, bought = settle_auction(bids, self.active, self.config["auction"], offer, offer_price, scored)
        lookahead = bids
        if self.mean_lookahead and self.lookahead_bids is not None:
            lookahead = np.asarray(self.lookahead_bids, dtype=np.float64).reshape(-1)
            lookahead = np.where(self.active, lookahead if self.adaptive else np.clip(lookahead, 0, 1), np.nan)
            self.lookahead_bids = None  # one step's: set again before the next
        if self.pricing:  # the cut state's price: nothing acts, the episode ends truncated
            state, env_reward, env_return, discount, terminated, truncated, inner = (
                self.state, 0.0, 0.0, 1.0, False, True, None)
            bonus = 0.0
        else:
            bonus = self.count_bonus(winner // self.clones)
            state, env_reward, env_return, discount, terminated, truncated, inner = self.apply_primitive(
                winner // self.clones)
        cut = truncated and not terminated and not self.pricing and self.config["truncation"] == "bootstrap"
        last = (terminated or truncated) and not cut
        reward = 0.0 if self.pricing else bid_reward(env_reward + bonus, discount, last, self.value_range)
        for key, value in zip(self._history, (bids, reward, discount, env_return, offer, offer_price, scored,
                                              lookahead, bonus)):
            self._history[key].append(value)

        record = {
            "step": len(self._history["bids"]) - 1,
            "bids": bids,
            "active": self.active,
            "winner": winner,
            "price": paid,
            "offer": offer,  # the bidder offered the state (-1: the usual auction)
            "offer_price": offer_price,
            "scored": scored,  # a scored offer: the bidder earns -(bid - value)^2 / 2 (`auction_outcomes`)
            "bought": bought,
            "reward": reward,
            "env_reward": env_reward,
            "bonus": bonus,  # the count bonus the market paid the winner, in env units (in "reward" too)
            "discount": discount,
            "last": last,
            "pricing": self.pricing,
        }
        if self.mean_lookahead:
            record["lookahead_bids"] = lookahead  # the bids that price the state for its seller
        if inner:  # a society option's own auctions, one per env step
            record[INNER_AUCTIONS] = inner
        if last:
            record[EPISODE_INFO] = self.episode_summary()
        self.state = state
        self.pricing = cut
        return self._encode(state), reward, terminated, truncated and not cut, {AUCTION_INFO: record}

    def count_bonus(self, primitive: int) -> float:
        """Count-based optimism: the market pays the winner ``bonus / sqrt(n)`` env reward units for
        acting in a state whose primitive has now acted there n times (counted by this env, over
        its episodes). The auction is then the paper's auction on the env with that reward, where
        truthful bids are dominant as before; the bonus fades as states are revisited, and with it
        the equilibrium's gap to Q*. Greedy evaluation pays none (it runs without exploration)."""
        if not self.bonus:
            return 0.0
        key = (int(self.state), primitive)
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.bonus / math.sqrt(self.counts[key])

    def apply_primitive(self, primitive: int) -> tuple[Any, float, float, float, bool, bool, list | None]:
        """Applies the winning primitive: one env action, or a whole option (`OptionsEnv`).

        Returns:
            (next state, reward (an option's discounted return), the env's own reward (an
            option's undiscounted return), discount gamma ** env steps, terminated, truncated,
            a society option's own auctions or None).
        """
        state, reward, terminated, truncated, info = self.base_env.step(primitive)
        self._env_steps += info.get(OPTION_STEPS, 1)
        return (state, float(reward), float(info.get(OPTION_RETURN, reward)),
                info.get(OPTION_DISCOUNT, self.config["gamma"]), terminated, truncated, info.get(INNER_AUCTIONS))

    def _sample_active(self) -> np.ndarray:
        """Agent dropout: each unit (bidder, or primitive with its clones) sits out with
        probability `dropout`, but at least two bidders always stay."""
        by_primitive = self.config["dropout_unit"] == "primitive"
        units = self.num_primitives if by_primitive else self.num_bidders
        ids_per_unit = self.clones if by_primitive else 1
        active = self.np_random.random(units) >= self.config["dropout"]
        missing = min(-(-2 // ids_per_unit), units) - int(active.sum())
        if missing > 0:
            active[self.np_random.choice(np.flatnonzero(~active), missing, replace=False)] = True
        return np.repeat(active, ids_per_unit)

    def _encode(self, state) -> np.ndarray:
        return bidder_observation(state, self.base_env.observation_space)

    def episode_summary(self) -> dict[str, Any]:
        """Metrics of the episode so far (the last step's record holds them when it ends): env
        return (env units), env and auction steps, and per primitive its win frequency, mean
        bid and mean utility per auction step."""
        bids = np.array(self._history["bids"])
        active = np.broadcast_to(self.active, bids.shape)
        offers = (np.array(self._history["offers"], dtype=np.int64), np.array(self._history["offer_prices"]),
                  np.array(self._history["scored"], dtype=bool))
        lookahead = np.array(self._history["lookahead_bids"]) if self.mean_lookahead else None
        outcomes = auction_outcomes(bids, active, self.config["auction"], *offers, clones=self.clones,
                                    lookahead_bids=lookahead)
        rewards, discounts = self._history["rewards"], self._history["discounts"]
        utilities = outcome_utilities(outcomes, bids.shape, rewards, discounts, self.config["auction"])
        steps = len(bids) - self.pricing  # the last row priced the cut state: not an auction of the episode
        bids, active, utilities = bids[:steps], active[:steps], utilities[:steps]
        winners, explored = outcomes.winners[:steps], offers[0][:steps] >= 0
        by_primitive = lambda x: x.reshape(steps, self.num_primitives, self.clones)  # noqa: E731
        bid_counts = by_primitive(active).sum(axis=(0, 2))
        bid_sums = by_primitive(np.where(active, bids, 0.0)).sum(axis=(0, 2))
        return {
            "env_return": float(np.sum(self._history["env_r"])),
            "env_steps": self._env_steps,
            "auction_steps": steps,
            "win_freq": np.bincount(winners // self.clones, minlength=self.num_primitives) / steps,
            "mean_bid": np.where(bid_counts > 0, bid_sums / np.maximum(bid_counts, 1), np.nan),
            "utility": by_primitive(utilities).sum(axis=(0, 2)) / steps,
            "priced_cut": self.pricing,
            "offers": int(explored.sum()),
            "offers_bought": int(outcomes.bought[:steps].sum()),
            "market_balance": float(market_balance(outcomes, rewards, discounts)[:steps].sum()),
            "bonus_paid": float(np.sum(self._history["bonus"])),
        }
