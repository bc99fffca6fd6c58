"""`SocietyPPOConfig`: RLlib's `PPOConfig` for a society, set up from one `.society(...)` call."""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_society.auction import AUCTIONS, DROPOUT_UNITS
from rllib_society.auction_env import (
    DEFAULT_SOCIETY_CONFIG, TRUNCATIONS, primitive_name, resolve_value_range, society_spaces,
)
from rllib_society.bidder import BidderCatalog
from rllib_society.env_runner import SocietyEnvRunner
from rllib_society.learner import SocietyPPOLearner
from rllib_society.metrics import SocietyMetrics
from rllib_society.options import OPTION_BIDS
from rllib_society.society_env import BID_SPACE, SocietyEnv, policy_mapping_fn
from rllib_society.society_module import SocietyMultiRLModule

#: How a society samples and learns, by ``sampler``: its env runner, learner (None: RLlib's
#: default) and MultiRLModule class. "stock" is RLlib's own multi-agent path, the reference;
#: "fast" the society's batched runner and learner over the same modules.
_SAMPLERS = {
    "fast": (SocietyEnvRunner, SocietyPPOLearner, SocietyMultiRLModule),
    "stock": (None, None, MultiRLModule),
}


class SocietyPPOConfig(PPOConfig):
    """PPO for a society of primitives on `SocietyEnv`: one RLlib module ``p{k}`` per primitive
    (RLlib's default PPO network with Beta bids), every bidder's reward its exact auction
    utility, PPO's gamma 0 (bidders are memoryless: the utility holds the lookahead).

    Example::

        config = (SocietyPPOConfig()
                  .society(env="Chain-v0", auction="ccv", clones=2)
                  .training(lr=1e-3, train_batch_size_per_learner=400))
        algo = config.build_algo()
        algo.train()
        algo.get_module("p1")

    Everything else is RLlib's own config (``.env_runners``, ``.training``, ``.rl_module
    (model_config=...)``, ``.multi_agent(policies_to_train=...)``, per-module overrides).
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        self.society_config: dict[str, Any] = {}
        self.sampler = "fast"

    def society(self, *, env: str = NotProvided, env_config: dict = NotProvided, auction: str = NotProvided,
                clones: int = NotProvided, dropout: float = NotProvided, dropout_unit: str = NotProvided,
                gamma: float = NotProvided, value_range: list = NotProvided, truncation: str = NotProvided,
                options: list = NotProvided,
                option_done_action: int = NotProvided, option_max_steps: int = NotProvided,
                option_bids: str = NotProvided, eval_episodes: int = NotProvided, eval_max_steps: int = NotProvided,
                sampler: str = NotProvided) -> "SocietyPPOConfig":
        """Sets the society and everything that depends on it: the env, one module per
        primitive, the policy mapping, PPO's gamma and lambda, and the sampler's env runner and
        learner.

        Args:
            env: gymnasium id of the wrapped env (Discrete actions). env_config: its arguments.
            auction: "v", "ccv", "bb" or "env": the utility every bidder is rewarded with.
            clones: bidders per primitive. dropout, dropout_unit: agent dropout ("agent" or
                "primitive"). gamma: the society's discount (inside the utilities).
            value_range: [lo, hi], the env values bids 0 and 1 stand for (None: from the env's Q*,
                else its reward range and time limit; see `rllib_society.value_range`).
            truncation: "end" (a time-limit cut ends the task) or "bootstrap" (the cut auction is
                paid the cut state's price; needs sampler "fast").
            options: pre-trained options as the primitives (checkpoints of policies or of
                societies, or objects with ``act(obs)``), with option_done_action,
                option_max_steps and option_bids (how a society option bids: "greedy" or "sampled").
            eval_episodes: greedy evaluation episodes per iteration (the metrics callback's), each
                cut after eval_max_steps env steps (None: the env's time limit, else 1,000).
            sampler: "fast" (the society's env runner and learner) or "stock" (RLlib's).
        """
        given = {k: v for k, v in locals().items() if k not in ("self", "sampler") and v is not NotProvided}
        config = {**DEFAULT_SOCIETY_CONFIG, **self.society_config, **given}
        _check(config, self.sampler if sampler is NotProvided else sampler)
        self.society_config = config
        if sampler is not NotProvided:
            self.sampler = sampler
        env_runner_cls, learner_class, multi_rl_module_class = _SAMPLERS[self.sampler]
        num_primitives, observation_space = society_spaces(config)
        module_ids = [primitive_name(k) for k in range(num_primitives)]
        # The env config holds the value range resolved once (not by every env from Q*).
        env_config = {**config, "value_range": list(resolve_value_range(config))}
        self.environment(SocietyEnv, env_config=env_config, normalize_actions=False, clip_actions=False)
        self.multi_agent(policies=set(module_ids), policy_mapping_fn=policy_mapping_fn)
        self.rl_module(rl_module_spec=MultiRLModuleSpec(
            multi_rl_module_class=multi_rl_module_class,
            # Spaces given: RLlib would otherwise match every module against every agent id
            # (quadratic in the society's size: minutes at 1,024 primitives).
            rl_module_specs={m: RLModuleSpec(catalog_class=BidderCatalog, observation_space=observation_space,
                                             action_space=BID_SPACE) for m in module_ids},
        ))
        self.training(gamma=0.0, lambda_=1.0)
        self.env_runners(env_runner_cls=env_runner_cls)
        self.learners(learner_class=learner_class)
        # RLlib checks every gradient tensor for NaN/inf one by one; the fast learner does the
        # same for all tensors at once.
        self.framework(torch_skip_nan_gradients=learner_class is not None)
        if self.callbacks_class is RLlibCallback:  # RLlib's default: no callbacks of the user's
            self.callbacks(SocietyMetrics)
        return self

    def validate(self) -> None:
        """RLlib's checks, plus: `.society()` was called, and PPO's gamma is 0 and lambda 1."""
        super().validate()
        if not self.society_config:
            raise ValueError("SocietyPPOConfig needs .society(env=..., auction=..., ...) before it is built.")
        if self.gamma != 0.0 or self.lambda_ != 1.0:
            raise ValueError(f"gamma={self.gamma}, lambda_={self.lambda_}: a society's PPO needs gamma 0 and "
                             f"lambda 1 (the utilities hold the discount); set the society's discount with "
                             f".society(gamma=...).")


def _check(config: dict[str, Any], sampler: str) -> None:
    """Clear errors for bad society settings, before anything is built."""
    if config["auction"] not in AUCTIONS:
        raise ValueError(f"auction={config['auction']!r} is not allowed; allowed: {', '.join(AUCTIONS)}.")
    if sampler not in _SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is not allowed; allowed: {', '.join(_SAMPLERS)}.")
    if not isinstance(config["clones"], int) or config["clones"] < 1:
        raise ValueError(f"clones={config['clones']!r} is not allowed; clones must be an integer >= 1.")
    if not 0.0 <= config["dropout"] < 1.0:
        raise ValueError(f"dropout={config['dropout']!r} is not allowed; dropout must be in [0, 1).")
    if config["truncation"] not in TRUNCATIONS:
        raise ValueError(f"truncation={config['truncation']!r} is not allowed; allowed: {', '.join(TRUNCATIONS)}.")
    if config["truncation"] == "bootstrap" and sampler == "stock":
        raise ValueError("truncation='bootstrap' is not allowed with sampler='stock'; truncation must be 'end' "
                         "there: RLlib's stock learner would train the bids of the pricing auction, which earn "
                         "nothing. Use sampler='fast'.")
    if config["option_bids"] not in OPTION_BIDS:
        raise ValueError(f"option_bids={config['option_bids']!r} is not allowed; allowed: {', '.join(OPTION_BIDS)}.")
    if config["dropout_unit"] not in DROPOUT_UNITS:
        raise ValueError(f"dropout_unit={config['dropout_unit']!r} is not allowed; allowed: {', '.join(DROPOUT_UNITS)}.")
