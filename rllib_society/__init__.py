"""rllib-society: a society of bidding primitives (Chang et al., ICML 2020) on Ray RLlib.

The auction maths and the config import without Ray; the RLlib pieces load on first use.
"""

from importlib import import_module

from rllib_society.auction import AUCTIONS, clear_auctions, episode_utilities
from rllib_society.config import ExperimentConfig, load_config

_LAZY = {
    "SocietyPPOConfig": "rllib_society.ppo_config",
    "SocietyEnv": "rllib_society.society_env",
    "AuctionEnv": "rllib_society.auction_env",
    "SocietyMultiRLModule": "rllib_society.society_module",
    "SocietyEnvRunner": "rllib_society.env_runner",
    "AuctionChunk": "rllib_society.env_runner",
    "SocietyPPOLearner": "rllib_society.learner",
    "build_algo_config": "rllib_society.algo_config",
    "train": "rllib_society.training",
    "evaluate": "rllib_society.evaluation",
}

__all__ = ["AUCTIONS", "clear_auctions", "episode_utilities", "ExperimentConfig", "load_config", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rllib_society' has no attribute {name!r}")
