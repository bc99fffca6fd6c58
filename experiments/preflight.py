"""Checks before Ray starts that touch the disk or make the env: the checkpoints a config names
exist, and the env exists and suits a society (`validate`)."""

from __future__ import annotations

from pathlib import Path

from experiments.config import ExperimentConfig, FieldError


def validate(config: ExperimentConfig) -> None:
    """The checks beyond the model's types and ranges: the files a config names exist and the
    env suits a society.

    Raises:
        ValueError: naming the field, the bad value and what is allowed.
    """
    def require(ok: bool, name: str, allowed: str) -> None:
        if not ok:
            raise FieldError(name, getattr(config, name), allowed)

    if config.options:
        missing = [p for p in config.options if not Path(p).expanduser().exists()]
        require(not missing, "options", f"RLlib checkpoints that exist (missing: {', '.join(map(str, missing))})")
        require(config.option_done_action is not None, "option_done_action",
                "the env action (or list of them) with which an option says done (MiniGrid: 6)")
    if config.init_checkpoint is not None:
        from rllib_society import latest_checkpoint

        try:
            latest_checkpoint(config.init_checkpoint)
        except ValueError as error:
            raise ValueError(f"init_checkpoint={config.init_checkpoint!r} is not allowed: {error} It "
                             f"must be a run, trial or checkpoint folder of a finished run.") from None
    check_rllib_settings(config.rllib)
    check_env(config)
    if config.options:
        check_options(config)
    if config.algo == "society":
        from rllib_society import resolve_value_range

        resolve_value_range(config.society_config())  # the env bounds its values, or the user must


def check_options(config: ExperimentConfig) -> None:
    """Each option (a policy or a society checkpoint) fits the env (`check_option`)."""
    from rllib_society import check_option, make_base_env

    env = make_base_env(config.env, config.env_config)
    try:
        for k, option in enumerate(config.options):
            check_option(option, env, f"options[{k}]")
    finally:
        env.close()


#: PPOConfig settings this config sets from its own keys, or the society from its auction.
OWNED_SETTINGS = {
    "lr": "lr", "entropy_coeff": "entropy_coeff", "clip_param": "clip_param",
    "vf_loss_coeff": "vf_loss_coeff", "grad_clip": "grad_clip", "num_epochs": "num_epochs",
    "minibatch_size": "minibatch_size", "train_batch_size_per_learner": "train_batch_size_per_learner",
    "num_env_runners": "num_env_runners", "num_envs_per_env_runner": "num_envs_per_env_runner",
    "num_cpus_per_env_runner": "num_cpus_per_env_runner", "rollout_fragment_length": "rollout_fragment_length",
    "batch_mode": "batch_mode", "seed": "seed", "gamma": "gamma (the society's discount lives in the utilities)",
    "lambda_": "nothing: a society's PPO needs lambda 1", "env": "env", "env_config": "env_config",
    "policies": "nothing: one module per primitive", "policy_mapping_fn": "nothing: clones map to their primitive",
    "callbacks_class": "nothing: the run's metrics need its callbacks",
    "delay_between_env_runner_restarts_s": "env_runner_restart_delay_s",
}


def check_rllib_settings(settings: dict) -> None:
    """Raises ValueError for an ``rllib.<name>`` that is not a `PPOConfig` setting (with the
    nearest names) or that this config owns (with its key)."""
    import difflib

    if not settings:
        return
    from ray.rllib.algorithms.ppo import PPOConfig  # imports RLlib, starts nothing

    known = sorted(name for name in vars(PPOConfig()) if not name.startswith("_"))
    for name in settings:
        if name in OWNED_SETTINGS:
            raise ValueError(f"rllib.{name} is not allowed: this config sets it; use {OWNED_SETTINGS[name]}.")
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"rllib.{name} is not a setting of RLlib's PPOConfig.{hint}")


def check_local_cpus(configs: list[ExperimentConfig]) -> None:
    """Raises ValueError when a trial asks an embedded local Ray (no ``address``) for more CPUs
    than this machine has: Tune would wait for them forever. The request is RLlib's own
    (`Algorithm.default_resource_request`): the algorithm's process, its env runners, its
    learners."""
    import os

    local = [config for config in configs if config.address is None]
    if not local:
        return
    from ray.rllib.algorithms.ppo import PPO

    from experiments.algo_config import build_algo_config

    have = os.cpu_count() or 1
    for config in local:
        algo_config = build_algo_config(config)
        need = PPO.default_resource_request(algo_config).required_resources.get("CPU", 0.0)
        if need > have:
            raise ValueError(
                f"a trial needs {need:g} CPUs (1 for the algorithm, num_env_runners="
                f"{algo_config.num_env_runners} x num_cpus_per_env_runner={algo_config.num_cpus_per_env_runner:g}, "
                f"rllib.num_learners={algo_config.num_learners} x rllib.num_cpus_per_learner="
                f"{algo_config.num_cpus_per_learner}) but this machine has {have}: lower those (fractions are "
                f"fine), or join a cluster with --address.")


def check_env(config: ExperimentConfig) -> None:
    """Makes the env once to check that it exists and suits a society (`make_checked_env`), and
    that its states can be counted for a count bonus (`check_bonus`)."""
    import envs  # noqa: F401  (registers the project's ids in this process)
    from rllib_society import make_checked_env
    from rllib_society.exploration import check_bonus, exploration_settings

    env = make_checked_env(config.env, config.env_config)
    try:
        if config.algo == "society":
            check_bonus(exploration_settings(config.exploration)["bonus"], env.observation_space)
    finally:
        env.close()
