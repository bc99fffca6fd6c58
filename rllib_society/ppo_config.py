"""`SocietyPPOConfig`: RLlib's `PPOConfig` for a society, set up from one `.society(...)` call."""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule, MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_society.auction_env import DEFAULT_SOCIETY_CONFIG, primitive_name, resolve_value_range, society_spaces
from rllib_society.bidder import BidderCatalog
from rllib_society.env_runner import SocietyEnvRunner
from rllib_society.learner import SocietyPPOLearner
from rllib_society.errors import FieldError
from rllib_society.metrics import SocietyMetrics
from rllib_society.settings import SAMPLERS, check_society_settings
from rllib_society.society_env import SocietyEnv, bid_space, policy_mapping_fn
from rllib_society.value_range import is_adaptive
from rllib_society.society_module import SocietyMultiRLModule

#: How a society samples and learns, by ``sampler``: its env runner, learner (None: RLlib's
#: default) and MultiRLModule class. "stock" is RLlib's own multi-agent path, the reference;
#: "fast" the society's batched runner and learner over the same modules.
_SAMPLERS = {
    "fast": (SocietyEnvRunner, SocietyPPOLearner, SocietyMultiRLModule),
    "stock": (None, None, MultiRLModule),
}
assert tuple(_SAMPLERS) == SAMPLERS


def _model(config, key: str, default=None):
    return (config.model_config or {}).get(key, default)


#: RLlib settings the fast path does not honour, so `validate` refuses them there: the setting,
#: whether a config sets it, and what the fast path does in its place. Every other setting keeps
#: its meaning (docs/design.md: "RLlib settings on the fast path").
FAST_PATH_REFUSES = [
    ("env_to_module_connector", lambda c: c._env_to_module_connector is not None
     or not c.add_default_connectors_to_env_to_module_pipeline,
     "the fast env runner bids on the observations as the env gives them, with no env-to-module connector "
     "(observation filters such as MeanStdFilter are such connectors)"),
    ("module_to_env_connector", lambda c: c._module_to_env_connector is not None
     or not c.add_default_connectors_to_module_to_env_pipeline,
     "the fast env runner hands the sampled bids to the auction, with no module-to-env connector"),
    ("learner_connector", lambda c: c._learner_connector is not None or not c.add_default_connectors_to_learner_pipeline,
     "the fast learner builds its batch with its own connector (AuctionChunksToBatch)"),
    ("policy_mapping_fn", lambda c: c.policy_mapping_fn is not policy_mapping_fn,
     "the fast path maps clone c of primitive k to module p{k}"),
    ("model_config['use_lstm']", lambda c: bool(_model(c, "use_lstm")),
     "bidders are memoryless: the fast env runner keeps no recurrent state"),
    ("torch_compile_learner", lambda c: c.torch_compile_learner, "the fast learner's update is not compiled"),
    ("torch_compile_worker", lambda c: c.torch_compile_worker, "the fast env runner's forward pass is not compiled"),
    ("torch_ddp_kwargs", lambda c: bool(c.torch_ddp_kwargs),
     "the fast learner all-reduces the stacked gradients itself, outside DDP"),
    ("_torch_grad_scaler_class", lambda c: c._torch_grad_scaler_class is not None,
     "the fast learner steps its optimizers without a gradient scaler"),
    ("_torch_lr_scheduler_classes", lambda c: c._torch_lr_scheduler_classes is not None,
     "the fast learner follows RLlib's lr schedules (lr=[[step, value], ...]), not torch schedulers"),
    ("input_", lambda c: c.input_ != "sampler", "the fast path trains on the auctions its env runners sample"),
]


class SocietyPPOConfig(PPOConfig):
    """PPO for a society of primitives on `SocietyEnv`: one RLlib module ``p{k}`` per primitive
    (RLlib's default PPO network with Beta bids), every bidder's reward its exact auction
    utility, PPO's gamma 0 (bidders are memoryless: the utility holds the lookahead).

    Example::

        config = (SocietyPPOConfig()
                  .society(env="FrozenLake-v1", env_config={"is_slippery": False})
                  .training(lr=1e-3, train_batch_size_per_learner=400))
        algo = config.build_algo()
        algo.train()
        algo.get_module("p1")

    Everything else is RLlib's own config (``.env_runners``, ``.training``, ``.rl_module
    (model_config=...)``, ``.multi_agent(policies_to_train=...)``, per-module overrides). On
    the fast path, the few RLlib settings it cannot honour are refused by `validate`, naming the
    setting (`FAST_PATH_REFUSES`); ``sampler="stock"`` runs them.
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        self.society_config: dict[str, Any] = {}
        self.sampler = "fast"
        self.row_ledger: str | None = None

    def society(self, *, env: str = NotProvided, env_config: dict = NotProvided, auction: str = NotProvided,
                clones: int = NotProvided, dropout: float = NotProvided, dropout_unit: str = NotProvided,
                gamma: float = NotProvided, value_range: list = NotProvided, truncation: str = NotProvided,
                lookahead: str = NotProvided, exploration: dict | None = NotProvided,
                options: list = NotProvided,
                option_done_action: int | list[int] = NotProvided, option_max_steps: int = NotProvided,
                option_bids: str = NotProvided, option_observation: str | None = NotProvided, eval_episodes: int = NotProvided, eval_interval: int = NotProvided,
                eval_max_steps: int = NotProvided,
                sampler: str = NotProvided, row_ledger: str | None = NotProvided) -> "SocietyPPOConfig":
        """Sets the society and everything that depends on it: the env, one module per
        primitive, the policy mapping, PPO's gamma and lambda, and the sampler's env runner and
        learner. Bad values raise a ValueError naming the argument and what is allowed
        (`rllib_society.settings`), before anything is built.

        Args:
            env: gymnasium id of the wrapped env (Discrete actions). env_config: its arguments.
            auction: "v", "ccv", "bb" or "env": the utility every bidder is rewarded with.
            clones: bidders per primitive. dropout, dropout_unit: agent dropout ("agent" or
                "primitive"). gamma: the society's discount (inside the utilities).
            value_range: [lo, hi], the env values bids 0 and 1 stand for (None: from the env's Q*,
                else its reward range and time limit; see `rllib_society.value_range`), or
                "adaptive": bids on the real line, in env units (`rllib_society.value_scale`).
            truncation: "end" (a time-limit cut ends the task) or "bootstrap" (the cut auction is
                paid the cut state's price; needs sampler "fast").
            lookahead: "sampled" (a state sells for the clearing price of the sampled bids) or
                "mean" (of the bidders' mean bids; needs sampler "fast"; `auction_outcomes`).
            exploration: None (the paper's auction) or {"kind": "offers" or "scored", "rate": r,
                "bonus": b}: a share r of auctions offer the state to one primitive, at a random
                price or scored on its bid, so that every primitive learns its value, not only
                the winners. b > 0 adds a count bonus, b / sqrt(n) env reward units for the n-th
                time a primitive acts in a (Discrete) state. r and b may be schedules
                [[env_steps, x], ...] (fast sampler). "baseline": "expected" (fast sampler) gives
                a scored row the scored utility's expectation as its baseline, and "scored_loss": "mean"
                (fast sampler) fits a scored row's mean bid to the step's value instead of PPO's loss
                (`rllib_society.exploration`).
            options: pre-trained options as the primitives (checkpoints of policies or of
                societies, or objects with ``act(obs)``), with option_done_action,
                option_max_steps, option_bids (how a society option bids: "greedy" or "sampled") and
                option_observation (``module:function``: what the options observe of a state).
            eval_episodes: greedy evaluation episodes per iteration (the metrics callback's), each
                cut after eval_max_steps env steps (None: the env's time limit, else 1,000),
                after every eval_interval-th iteration.
            sampler: "fast" (the society's env runner and learner) or "stock" (RLlib's).
            row_ledger: a folder where the fast path's env runners and learners write the
                identities of the rows they hand over and train (`rllib_society.rows`), to prove
                that none is lost or duplicated; None (default): none written.
        """
        given = {k: v for k, v in locals().items()
                 if k not in ("self", "sampler", "row_ledger") and v is not NotProvided}
        config = {**DEFAULT_SOCIETY_CONFIG, **self.society_config, **given}
        check_society_settings(config, self.sampler if sampler is NotProvided else sampler)
        num_primitives, observation_space = society_spaces(config)
        self.society_config = config
        if sampler is not NotProvided:
            self.sampler = sampler
        if row_ledger is not NotProvided:
            self.row_ledger = None if row_ledger is None else str(row_ledger)
        env_runner_cls, learner_class, multi_rl_module_class = _SAMPLERS[self.sampler]
        module_ids = [primitive_name(k) for k in range(num_primitives)]
        # The env config holds the value range resolved once (not by every env from Q*).
        adaptive = is_adaptive(config["value_range"])
        env_config = {**config, "value_range": config["value_range"] if adaptive else list(resolve_value_range(config))}
        self.environment(SocietyEnv, env_config=env_config, normalize_actions=False, clip_actions=False)
        self.multi_agent(policies=module_ids, policy_mapping_fn=policy_mapping_fn)
        self.rl_module(rl_module_spec=MultiRLModuleSpec(
            multi_rl_module_class=multi_rl_module_class,
            # Spaces given: RLlib would otherwise match every module against every agent id
            # (quadratic in the society's size: minutes at 1,024 primitives).
            rl_module_specs={m: RLModuleSpec(catalog_class=BidderCatalog, observation_space=observation_space,
                                             action_space=bid_space(adaptive)) for m in module_ids},
        ))
        self.training(gamma=0.0, lambda_=1.0)
        self.env_runners(env_runner_cls=env_runner_cls)
        self.learners(learner_class=learner_class)
        if self.callbacks_class is RLlibCallback:  # RLlib's default: no callbacks of the user's
            self.callbacks(SocietyMetrics)
        return self

    def validate(self) -> None:
        """RLlib's checks, plus: `.society()` was called, PPO's gamma is 0 and lambda 1, the
        bids reach the env as sampled, a local learner gets the GPU it asks for, and on the
        fast path no setting is set that it would not honour (`FAST_PATH_REFUSES`)."""
        super().validate()
        if not self.society_config:
            raise ValueError("SocietyPPOConfig needs .society(env=..., auction=..., ...) before it is built.")
        if self.gamma != 0.0 or self.lambda_ != 1.0:
            raise ValueError(f"gamma={self.gamma}, lambda_={self.lambda_}: a society's PPO needs gamma 0 and "
                             f"lambda 1 (the utilities hold the discount); set the society's discount with "
                             f".society(gamma=...).")
        if self.normalize_actions:
            raise FieldError("normalize_actions", True, "False: bids are Beta samples in [0, 1], the env's own "
                                                        "action space, which RLlib would re-map from [-1, 1]")
        if self.num_gpus_per_learner > 0 and self.num_learners == 0 and not _cuda():
            raise FieldError("num_gpus_per_learner", self.num_gpus_per_learner,
                             "0 on this machine: it has no GPU (torch.cuda.is_available() is False) and the learner "
                             "is local (num_learners=0)")
        if self.sampler == "stock":
            if self.row_ledger is not None:
                raise FieldError("row_ledger", self.row_ledger, "None with sampler='stock' (the ledger is the fast "
                                                                "path's)")
            return
        for setting, is_set, instead in FAST_PATH_REFUSES:
            if is_set(self):
                raise ValueError(f"{setting} is set, which the society's fast path does not honour: {instead}. "
                                 f"Use sampler='stock' (.society(sampler='stock')), RLlib's own multi-agent path, "
                                 f"for this setting.")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
