"""rllib-society: a society of bidding primitives (Chang et al., ICML 2020) as an RLlib extension.

Build a society with `SocietyPPOConfig` (an RLlib ``PPOConfig``)::

    from rllib_society import SocietyPPOConfig

    config = SocietyPPOConfig().society(env="CartPole-v1", auction="ccv", clones=2,
                                        value_range=[0, 100])  # discounted returns (gamma 0.99)
    algo = config.build_algo()
    algo.train()
    algo.get_module("p0")  # primitive 0's RLlib module

The auction maths (`clear_auctions`, `episode_utilities`) import without Ray; the RLlib pieces load
on first use. Nothing here imports the experiment app (``experiments``) or the paper's envs.
"""

from importlib import import_module

from rllib_society.auction import AUCTIONS, DROPOUT_UNITS, clear_auctions, episode_utilities

_LAZY = {
    "SocietyPPOConfig": "rllib_society.ppo_config",
    "SocietyEnv": "rllib_society.society_env",
    "policy_mapping_fn": "rllib_society.society_env",
    "AuctionEnv": "rllib_society.auction_env",
    "BaseEnv": "rllib_society.auction_env",
    "make_base_env": "rllib_society.auction_env",
    "make_primitive_env": "rllib_society.auction_env",
    "options_q_star": "rllib_society.auction_env",
    "check_base_env": "rllib_society.auction_env",
    "make_checked_env": "rllib_society.auction_env",
    "FieldError": "rllib_society.errors",
    "SAMPLERS": "rllib_society.settings",
    "check_society_settings": "rllib_society.settings",
    "FAST_PATH_REFUSES": "rllib_society.ppo_config",
    "AuctionEpisode": "rllib_society.env_runner",
    "RowEntry": "rllib_society.rows",
    "RowLedger": "rllib_society.rows",
    "compare_rows": "rllib_society.rows",
    "read_ledger": "rllib_society.rows",
    "primitive_name": "rllib_society.auction_env",
    "AUCTION_INFO": "rllib_society.auction_env",
    "EPISODE_INFO": "rllib_society.auction_env",
    "TRUNCATIONS": "rllib_society.auction_env",
    "resolve_value_range": "rllib_society.auction_env",
    "bidder_observation": "rllib_society.observations",
    "bidder_observation_space": "rllib_society.observations",
    "SocietyMultiRLModule": "rllib_society.society_module",
    "bid_inputs": "rllib_society.society_module",
    "greedy_bids": "rllib_society.society_module",
    "SocietyEnvRunner": "rllib_society.env_runner",
    "AuctionChunk": "rllib_society.env_runner",
    "SocietyPPOLearner": "rllib_society.learner",
    "SemiMDPPPOLearner": "rllib_society.semi_mdp",
    "TorchBeta": "rllib_society.bidder",
    "TorchGaussianBid": "rllib_society.bidder",
    "BidderCatalog": "rllib_society.bidder",
    "load_modules": "rllib_society.checkpoints",
    "load_policy": "rllib_society.checkpoints",
    "latest_checkpoint": "rllib_society.checkpoints",
    "MODULES_SUBDIR": "rllib_society.checkpoints",
    "SocietyMetrics": "rllib_society.metrics",
    "SOCIETY": "rllib_society.metrics",
    "SMOOTHING_EPISODES": "rllib_society.metrics",
    "EXPLORATION_METRICS": "rllib_society.metrics",
    "episode_summary": "rllib_society.metrics",
    "log_env_steps": "rllib_society.metrics",
    "OptionsEnv": "rllib_society.options",
    "OPTION_STEPS": "rllib_society.options",
    "OPTION_DISCOUNT": "rllib_society.options",
    "OPTION_RETURN": "rllib_society.options",
    "OPTION_BIDS": "rllib_society.options",
    "INNER_AUCTIONS": "rllib_society.options",
    "SocietyPolicy": "rllib_society.options",
    "load_option": "rllib_society.options",
    "check_option": "rllib_society.options",
    "bid_reward": "rllib_society.value_range",
    "check_value_range": "rllib_society.value_range",
    "retired_reward_scale": "rllib_society.value_range",
    "default_value_range": "rllib_society.value_range",
    "to_bids": "rllib_society.value_range",
    "to_values": "rllib_society.value_range",
    "ADAPTIVE": "rllib_society.value_range",
    "is_adaptive": "rllib_society.value_range",
    "optimal_q_values": "rllib_society.q_values",
    "finite_horizon_q_values": "rllib_society.q_values",
    "q_values_by_step": "rllib_society.q_values",
    "options_q_values": "rllib_society.q_values",
}

__all__ = ["AUCTIONS", "DROPOUT_UNITS", "clear_auctions", "episode_utilities", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rllib_society' has no attribute {name!r}")
