"""The one translation of an `ExperimentConfig` into RLlib's `PPOConfig`, and the Tune trainable
that applies it per trial."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.connectors.env_to_module import FlattenObservations
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

from rllib_society import MODULES_SUBDIR, BaseEnv, SemiMDPPPOLearner, SocietyPPOConfig, latest_checkpoint, make_base_env
from envs import importable_env_id
from experiments.callbacks import MonolithicMetricsCallback, SocietyMetricsCallback
from experiments.config import ExperimentConfig, make_config


def build_algo_config(config: ExperimentConfig) -> PPOConfig:
    """RLlib's `PPOConfig` for `config.algo`: the society (`society_ppo_config`) or the
    monolithic baseline (`monolithic_ppo_config`)."""
    if config.algo == "monolithic":
        return monolithic_ppo_config(config)
    return society_ppo_config(config)


def society_ppo_config(config: ExperimentConfig) -> SocietyPPOConfig:
    """`SocietyPPOConfig` for the experiment: one RLlib module per primitive, rewarded with its
    exact auction utility, sampled and trained by the fast path or RLlib's own (``sampler``)."""
    algo_config = (
        SocietyPPOConfig()
        .society(**config.society_config(), sampler=config.sampler,
                 row_ledger=config.row_ledger and str(Path(config.row_ledger).expanduser().resolve()))
        .rl_module(model_config=model_config(config))
        .learners(learner_config_dict={"standardize_advantages": config.standardize_advantages})
        .callbacks(SocietyMetricsCallback)
    )
    return _shared_settings(algo_config, config)


def monolithic_ppo_config(config: ExperimentConfig) -> PPOConfig:
    """Single-agent PPO whose actions are the primitives (the wrapped env's own actions, or the
    options), with the same networks, batch, budget and PPO settings as the society: the
    paper's baseline. Discrete states are one-hot encoded as for the bidders (RLlib's
    FlattenObservations); over options, its GAE discounts each option by gamma ** its length
    (`SemiMDPPPOLearner`), as the society's utilities do."""
    env = make_base_env(importable_env_id(config.env), config.env_config)  # in a trial's process too
    one_hot = isinstance(env.observation_space, gym.spaces.Discrete)
    env.close()
    algo_config = (
        PPOConfig()
        .environment(BaseEnv, env_config=config.society_config())
        .rl_module(model_config=model_config(config))
        .env_runners(env_to_module_connector=(
            (lambda env, spaces, device: FlattenObservations()) if one_hot else None))
        .training(gamma=config.gamma)
        .callbacks(MonolithicMetricsCallback)
    )
    if config.options and config.baseline_discount == "semi_mdp":  # gamma ** L after an option, as the society
        algo_config.learners(learner_class=SemiMDPPPOLearner)
    return _shared_settings(algo_config, config)


def model_config(config: ExperimentConfig) -> DefaultModelConfig:
    """RLlib's default networks: an MLP on vectors, a CNN (`conv_filters`) on images."""
    return DefaultModelConfig(
        fcnet_hiddens=list(config.fcnet_hiddens),
        fcnet_activation=config.fcnet_activation,
        conv_filters=config.conv_filters,
        head_fcnet_hiddens=list(config.head_fcnet_hiddens),
        vf_share_layers=config.vf_share_layers,
    )


def _shared_settings(algo_config: PPOConfig, config: ExperimentConfig) -> PPOConfig:
    """What the society and the baseline share: sampling, PPO's update, restarts, seed."""
    return (
        algo_config
        .env_runners(
            num_env_runners=config.num_env_runners,
            num_envs_per_env_runner=config.num_envs_per_env_runner,
            num_cpus_per_env_runner=config.num_cpus_per_env_runner,
            rollout_fragment_length=config.rollout_fragment_length,
            batch_mode=config.batch_mode,
        )
        .training(
            lr=config.lr,
            entropy_coeff=config.entropy_coeff,
            clip_param=config.clip_param,
            vf_loss_coeff=config.vf_loss_coeff,
            grad_clip=config.grad_clip,
            num_epochs=config.num_epochs,
            minibatch_size=config.minibatch_size,
            train_batch_size_per_learner=config.train_batch_size_per_learner,
        )
        .fault_tolerance(
            restart_failed_env_runners=True,
            delay_between_env_runner_restarts_s=config.env_runner_restart_delay_s,
        )
        .debugging(seed=config.seed)
        .update_from_dict(dict(config.rllib))  # any other RLlib setting, checked by preflight
    )


#: Key under which a `SocietyPPO` Tune config holds the flat experiment config.
SOCIETY_KEY = "society"
#: Config keys that belong to the driver (where to write, which cluster), not to a trial.
DRIVER_KEYS = ("output", "address", "storage_path")


def trial_param_space(config: ExperimentConfig) -> dict:
    """The Tune config of one `SocietyPPO` trial: the experiment config as plain values."""
    return {SOCIETY_KEY: {k: v for k, v in config.to_dict().items() if k not in DRIVER_KEYS}}


def _as_algo_config(config):
    if isinstance(config, dict) and SOCIETY_KEY in config:
        return build_algo_config(make_config(config[SOCIETY_KEY]))
    return config


class SocietyPPO(PPO):
    """RLlib's PPO, configured from a flat experiment config (`trial_param_space`).

    Tune varies plain values; a grid over the env or its arguments may change the number of
    primitives, hence the set of RLlib modules, so each trial builds its whole `PPOConfig` here.
    """

    @classmethod
    def default_resource_request(cls, config):
        return super().default_resource_request(_as_algo_config(config))

    def __init__(self, config=None, env=None, **kwargs):
        super().__init__(_as_algo_config(config), env=env, **kwargs)
        init = config.get(SOCIETY_KEY, {}).get("init_checkpoint") if isinstance(config, dict) else None
        if init:  # a resumed trial's own checkpoint is restored after this, by Tune
            self.restore_from_path(latest_checkpoint(init) / MODULES_SUBDIR, component=str(MODULES_SUBDIR))
