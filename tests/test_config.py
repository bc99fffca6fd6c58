"""Config loading and bad input: every error names the field and what is allowed, before Ray."""

import sys

import pytest

from experiments.config import CONFIG_KEYS, ExperimentConfig
from experiments.config_files import load_config, parse_set

@pytest.fixture
def ray_must_not_start(monkeypatch):
    """Any attempt to start Ray fails the test, whether or not an earlier test in this process
    (the suite's shared `ray_session`) left a Ray running."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray started before the bad input was reported")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)


CONFIGS = ["configs/chain.yaml", "configs/bandit.yaml", "configs/duality.yaml"]


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config.stop_timesteps > 0


def test_precedence_yaml_then_flags_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("auction: bb\nclones: 3\nlr: 0.01\n")
    config = load_config(path, {"clones": 1, "auction": None}, ["lr=0.5", "fcnet_hiddens=[8, 8]"])
    assert (config.auction, config.clones, config.lr, config.fcnet_hiddens) == ("bb", 1, 0.5, [8, 8])


def test_module_colon_env_id_imports_its_module():
    assert load_config(None, {"env": "envs:Duality-v0"}).env == "envs:Duality-v0"
    with pytest.raises(ValueError, match="env='no_such_module:X-v0'"):
        load_config(None, {"env": "no_such_module:X-v0"})


def test_env_config_set_reaches_the_env_constructor():
    config = load_config(None, {"env": "FrozenLake-v1"}, ["env_config.is_slippery=false", "env_config.map_name=8x8"])
    assert config.env_config == {"is_slippery": False, "map_name": "8x8"}


@pytest.mark.parametrize(
    "overrides, sets, message",
    [
        ({"env": "NoSuchEnv-v0"}, [], r"env='NoSuchEnv-v0' is not allowed; env must be a registered gymnasium id"),
        ({"env": "Blackjack-v1"}, [], r"env='Blackjack-v1'.*observation space is Discrete \(one-hot encoded\) or Box, not Tuple"),
        ({"env": "MountainCarContinuous-v0"}, [], r"env must be an env with a Discrete action space"),
        ({"auction": "vickrey"}, [], r"auction='vickrey'.*one of v, ccv, bb, env"),
        ({"clones": 0}, [], r"clones=0.*an integer >= 1"),
        ({}, ["clones=1.5"], r"clones=1.5 is not allowed; clones must be an integer >= 1"),
        ({"dropout": 1.0}, [], r"dropout=1.0.*in \[0, 1\)"),
        ({"dropout_unit": "clone"}, [], r"dropout_unit=.clone.*one of agent, primitive"),
        ({}, ["clone=2"], r"unknown config key 'clone'. Did you mean clones"),
        ({}, ["lr"], r"--set expects key=value"),
        ({}, ["lr=[[100, 0.01]]"], r"lr=.*schedule \[\[0, lr\]"),
        ({}, ["lr=-1"], r"lr=-1.*a float > 0"),
        ({}, ["minibatch_size=1000"], r"minibatch_size=1000.*<= train_batch_size_per_learner"),
        ({}, ["env_config.no_such_arg=1"], r"env_config=.*must be the arguments of env 'Chain-v0'"),
        ({"sampler": "rllib"}, [], r"sampler='rllib'.*one of fast, stock"),
        ({"sampler": "stock", "standardize_advantages": False}, ["value_range=null"], r"standardize_advantages=False.*sampler: stock"),
        ({"batch_mode": "episodes"}, [], r"batch_mode='episodes'.*one of truncate_episodes, complete_episodes"),
        ({"rollout_fragment_length": 0}, [], r"rollout_fragment_length=0.*\"auto\" or an integer > 0"),
        ({"truncation": "cut"}, [], r"truncation='cut'.*one of end, bootstrap"),
        ({"sampler": "stock", "truncation": "bootstrap"}, ["value_range=null"], r"truncation='bootstrap'.*end with sampler: stock"),
        ({"lookahead": "max"}, [], r"lookahead='max'.*one of sampled, mean"),
        ({}, ["eval_interval=0"], r"eval_interval=0 is not allowed; eval_interval must be an integer >= 1"),
        ({"checkpoint_at_end": False}, ["eval_interval=2"], r"eval_interval=2.*1 with checkpoint_at_end: false"),
        ({"sampler": "stock", "lookahead": "mean"}, ["value_range=null"], r"lookahead='mean'.*sampled with sampler: stock"),
        ({}, ["value_range=[1, 0]"], r"value_range=\[1, 0\].*None, \[lo, hi\].*or adaptive"),
        ({}, ["reward_scale=0.1"], r"reward_scale=0.1 is not allowed any more.*value_range: \[0, 1/s\] \(here \[0, 10\]\)"),
        ({"env": "CartPole-v1"}, ["value_range=null"], r"value_range=None is not allowed for env 'CartPole-v1'"),
        ({}, ["rllib.num_learner=2"], r"rllib.num_learner is not a setting of RLlib's PPOConfig. Did you mean num_learners"),
        ({}, ["rllib.gamma=0.9"], r"rllib.gamma is not allowed: this config sets it; use gamma"),
        ({}, ["rllib.lr=0.1"], r"rllib.lr is not allowed: this config sets it; use lr"),
    ],
)
def test_bad_input_names_the_field(overrides, sets, message):
    with pytest.raises(ValueError, match=message):
        load_config("configs/chain.yaml", overrides, sets)


def test_unknown_yaml_key_lists_allowed_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("auction: ccv\nnum_clones: 2\n")
    with pytest.raises(ValueError, match=r"unknown config key 'num_clones'.*Allowed: .*clones"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ValueError, match="does not exist"):
        load_config("configs/nope.yaml")


def test_parse_set_types_values():
    assert parse_set("lr=3e-4") == ("lr", 3e-4)
    assert parse_set("checkpoint_at_end=false") == ("checkpoint_at_end", False)
    assert parse_set("clones=2") == ("clones", 2) and isinstance(parse_set("clones=2")[1], int)
    assert parse_set("fcnet_hiddens=[16, 16]") == ("fcnet_hiddens", [16, 16])
    assert parse_set("env=Chain-v0") == ("env", "Chain-v0")


def test_lr_schedule_is_accepted():
    assert load_config(None, None, ["lr=[[0, 1e-2], [100000, 1e-3]]"]).lr == [[0, 0.01], [100000, 0.001]]


def test_scientific_notation_in_yaml_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nstop_timesteps: 1000\n")
    assert load_config(path).lr == 1e-3


def test_every_field_is_documented_in_one_place():
    assert set(CONFIG_KEYS) == set(ExperimentConfig().to_dict())


def test_cli_bad_input_fails_before_ray_starts(capsys, monkeypatch, ray_must_not_start):
    import run

    monkeypatch.setattr(sys, "argv", ["run.py"])
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--clones", "0"])
    assert exit_info.value.code == 2
    assert "clones=0" in capsys.readouterr().err


def test_a_count_bonus_on_states_that_cannot_be_counted_fails_before_ray_starts(capsys, monkeypatch, ray_must_not_start):
    import run

    monkeypatch.setattr(sys, "argv", ["run.py"])
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--env", "CartPole-v1", "--set", "value_range=[0, 500]", "--set", "exploration.bonus=1"])
    assert exit_info.value.code == 2
    assert "exploration.bonus=1.0 is not allowed; exploration.bonus must be 0 for an env whose states are not " \
           "Discrete" in capsys.readouterr().err


def test_a_local_run_asking_more_cpus_than_the_machine_has_fails_before_ray_starts(capsys, monkeypatch, ray_must_not_start):
    import os

    import run
    from experiments.preflight import check_local_cpus

    too_many = str((os.cpu_count() or 1) + 1)
    monkeypatch.setattr(sys, "argv", ["run.py"])
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--num-env-runners", too_many])
    assert exit_info.value.code == 2
    assert f"num_env_runners={too_many} x num_cpus_per_env_runner=1" in capsys.readouterr().err
    # Fractions fit, and a cluster (--address) is not this machine.
    check_local_cpus([load_config(None, {"num_env_runners": int(too_many), "num_cpus_per_env_runner": 0.1})])
    check_local_cpus([load_config(None, {"num_env_runners": int(too_many), "address": "10.0.0.1:6379"})])


def test_the_model_checks_assignments_and_documents_its_fields():
    config = load_config(None)
    with pytest.raises(ValueError, match="clones"):  # pydantic's own error: a ValueError
        config.clones = 0
    field = ExperimentConfig.model_fields["clones"]
    assert "Agent ids per primitive" in field.description  # the field's docstring


def test_any_rllib_setting_reaches_the_ppo_config(tmp_path):
    from experiments.algo_config import build_algo_config

    path = tmp_path / "rllib.yaml"
    path.write_text("env: Chain-v0\nrllib:\n  kl_coeff: 0.0\n  num_cpus_per_learner: 2\n")
    config = load_config(path, None, ["rllib.num_learners=0", "rllib.use_kl_loss=false"])
    assert config.rllib == {"kl_coeff": 0.0, "num_cpus_per_learner": 2, "num_learners": 0, "use_kl_loss": False}
    algo_config = build_algo_config(config)
    assert (algo_config.kl_coeff, algo_config.num_cpus_per_learner, algo_config.use_kl_loss) == (0.0, 2, False)
    assert algo_config.gamma == 0.0  # the society's own settings stay
