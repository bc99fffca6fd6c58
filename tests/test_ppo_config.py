"""SocietyPPOConfig: one `.society()` call sets every dependent RLlib setting, and refuses what
would train one thing and report another."""

import pytest
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner

from rllib_society.env_runner import SocietyEnvRunner
from rllib_society.learner import SocietyPPOLearner
from rllib_society.ppo_config import SocietyPPOConfig
from rllib_society.society_env import SocietyEnv, policy_mapping_fn
from rllib_society.society_module import SocietyMultiRLModule


def test_society_sets_env_modules_mapping_runner_and_learner():
    config = SocietyPPOConfig().society(env="Chain-v0", env_config={"num_actions": 3}, auction="bb", clones=3)
    assert config.env is SocietyEnv and config.env_config["auction"] == "bb" and config.env_config["clones"] == 3
    assert config.policies.keys() == {"p0", "p1", "p2"} and config.policy_mapping_fn is policy_mapping_fn
    spec = config.rl_module_spec
    assert spec.multi_rl_module_class is SocietyMultiRLModule and set(spec.rl_module_specs) == {"p0", "p1", "p2"}
    env = SocietyEnv(config.env_config)  # each module's spaces given: what every agent of its env has
    for agent in env.possible_agents:
        module = spec.rl_module_specs[policy_mapping_fn(agent)]
        assert (module.observation_space, module.action_space) == (env.observation_spaces[agent], env.action_spaces[agent])
    assert (config.gamma, config.lambda_) == (0.0, 1.0)
    assert config.env_runner_cls is SocietyEnvRunner and config.learner_class is SocietyPPOLearner
    assert not config.normalize_actions and not config.clip_actions
    config.validate()


def test_the_stock_sampler_is_rllibs_own_runner_and_learner():
    config = SocietyPPOConfig().society(env="Chain-v0", sampler="stock")
    assert config.env_runner_cls is None and config.learner_class is not SocietyPPOLearner
    assert issubclass(config.get_default_learner_class(), PPOTorchLearner)
    # Switching back restores the fast path's pieces, keeping the society.
    config.society(sampler="fast")
    assert config.env_runner_cls is SocietyEnvRunner and config.env_config["env"] == "Chain-v0"


@pytest.mark.parametrize("kwargs, message", [
    ({"auction": "vickrey"}, r"auction='vickrey' is not allowed; allowed: v, ccv, bb, env"),
    ({"clones": 0}, r"clones=0.*>= 1"),
    ({"dropout": 1.0}, r"dropout=1.0.*\[0, 1\)"),
    ({"dropout_unit": "clone"}, r"dropout_unit='clone'.*agent, primitive"),
    ({"sampler": "rllib"}, r"sampler='rllib'.*fast, stock"),
])
def test_bad_society_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SocietyPPOConfig().society(env="Chain-v0", **kwargs)


def test_a_discounted_ppo_or_a_missing_society_is_refused():
    with pytest.raises(ValueError, match=r"gamma=0.99.*gamma 0 and lambda 1"):
        SocietyPPOConfig().society(env="Chain-v0").training(gamma=0.99).validate()
    with pytest.raises(ValueError, match=r"needs .society"):
        SocietyPPOConfig().environment("CartPole-v1").validate()
