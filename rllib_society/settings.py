"""The society's settings, checked in one place: what `SocietyPPOConfig.society` and the
experiment app's YAML and ``--set`` accept, each error worded the same way: "name=value is not
allowed; name must be <what is allowed>." (`FieldError`). Values only: the env's spaces are
checked where it is made (`check_base_env`)."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

from rllib_society.auction import AUCTIONS, DROPOUT_UNITS, LOOKAHEADS
from rllib_society.auction_env import TRUNCATIONS, check_env_id
from rllib_society.errors import FieldError
from rllib_society.exploration import exploration_settings
from rllib_society.options import OPTION_BIDS, option_observation_function
from rllib_society.value_range import check_value_range, is_adaptive

#: How a society samples and learns: its own batched env runner and learner, or RLlib's.
SAMPLERS = ("fast", "stock")


def check_society_settings(config: dict[str, Any], sampler: str = "fast") -> None:
    """Raises `FieldError` (a ValueError) for the first society setting of `config` (the keys
    of `DEFAULT_SOCIETY_CONFIG`) that is not allowed, or for a `sampler` that cannot run it."""
    def one_of(name: str, allowed: tuple, value: Any = None) -> None:
        value = config[name] if value is None else value
        if not (isinstance(value, str) and value in allowed):
            raise FieldError(name, value, "one of " + ", ".join(allowed))

    def number(name: str, allowed: str, ok, integer: bool = False, optional: bool = False) -> None:
        value = config[name]
        if optional and value is None:
            return
        kind = int if integer else Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or not ok(value):
            raise FieldError(name, value, ("None or " if optional else "") + allowed)

    check_env_id(config["env"])
    if not isinstance(config["env_config"], dict):
        raise FieldError("env_config", config["env_config"], "a dict of the env's constructor arguments")
    one_of("sampler", SAMPLERS, sampler)
    one_of("auction", AUCTIONS)
    number("clones", "an integer >= 1", lambda v: v >= 1, integer=True)
    number("dropout", "in [0, 1)", lambda v: 0 <= v < 1)
    one_of("dropout_unit", DROPOUT_UNITS)
    number("gamma", "in [0, 1]", lambda v: 0 <= v <= 1)
    if config["value_range"] is not None:
        check_value_range(config["value_range"])
    if is_adaptive(config["value_range"]) and sampler == "stock":
        raise FieldError("value_range", config["value_range"],
                         "None or [lo, hi] with sampler: stock (bids on the real line need the fast path's "
                         "value scale; use sampler: fast)")
    one_of("truncation", TRUNCATIONS)
    if config["truncation"] == "bootstrap" and sampler == "stock":
        raise FieldError("truncation", config["truncation"],
                         "end with sampler: stock (RLlib's stock learner would train the bids of the pricing "
                         "auction, which earn nothing; use sampler: fast)")
    one_of("lookahead", LOOKAHEADS)
    if config["lookahead"] == "mean" and sampler == "stock":
        raise FieldError("lookahead", config["lookahead"],
                         "sampled with sampler: stock (RLlib's env runner hands the env sampled bids only; "
                         "use sampler: fast)")
    exploration = exploration_settings(config["exploration"])
    for key in ("rate", "bonus"):
        if isinstance(exploration[key], list) and sampler == "stock":
            raise FieldError(f"exploration.{key}", exploration[key], f"a constant {key} with sampler: stock (the "
                                                                     "fast env runner follows schedules; use sampler: fast)")
    if exploration["baseline"] != "state" and sampler == "stock":
        raise FieldError("exploration.baseline", exploration["baseline"],
                         "state with sampler: stock (RLlib's GAE gives every row the critic's baseline; "
                         "use sampler: fast)")
    if exploration["scored_loss"] != "ppo" and sampler == "stock":
        raise FieldError("exploration.scored_loss", exploration["scored_loss"],
                         "ppo with sampler: stock (RLlib's PPO loss trains every row; use sampler: fast)")
    number("eval_episodes", "an integer >= 1", lambda v: v >= 1, integer=True)
    number("eval_interval", "an integer >= 1", lambda v: v >= 1, integer=True)
    number("eval_max_steps", "an integer >= 1", lambda v: v >= 1, integer=True, optional=True)
    if not isinstance(config["options"], (list, tuple)):
        raise FieldError("options", config["options"], "a list of option checkpoints (or objects with act(obs))")
    done = config["option_done_action"]
    if done is not None and not (_is_action(done) or (isinstance(done, (list, tuple)) and done
                                                      and all(_is_action(a) for a in done))):
        raise FieldError("option_done_action", done, "None, an integer >= 0 (an env action) or a non-empty list of them")
    number("option_max_steps", "an integer >= 1", lambda v: v >= 1, integer=True, optional=True)
    one_of("option_bids", OPTION_BIDS)
    if config["option_observation"] is not None:
        option_observation_function(config["option_observation"])



def _is_action(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
