"""RLlib's contract on the fast path: each `PPOConfig` setting is honoured as RLlib's stock learner
and env runner honour it (a test that fails if the setting is ignored), or `validate()` refuses
it, naming the setting and ``sampler='stock'`` (docs/design.md: "RLlib settings on the fast path")."""

from __future__ import annotations

import copy
from collections import Counter
import math
import re

import numpy as np
import pytest
import torch
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.connectors.env_to_module import MeanStdFilter
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from rllib_society import AUCTION_INFO, EPISODE_INFO, FAST_PATH_REFUSES, SocietyEnv, SocietyPPOConfig, TorchBeta
from rllib_society.env_runner import AuctionEpisode, SocietyEnvRunner


def society_config(sampler: str = "fast", log_gradients: bool = False, **training) -> SocietyPPOConfig:
    """A small society on Chain (3 primitives x 2 clones), with `training` settings."""
    return (SocietyPPOConfig()
            .reporting(log_gradients=log_gradients)
            .society(env="Chain-v0", env_config={"num_actions": 3}, clones=2, value_range=[0, 1], sampler=sampler)
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[8]))
            .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=16)
            .training(lr=1e-2, train_batch_size_per_learner=64, minibatch_size=32, **training)
            .debugging(seed=0))


def build_learner(config: SocietyPPOConfig):
    return config.build_learner(env=SocietyEnv(config.env_config))


def parameters(learner) -> dict[str, torch.Tensor]:
    return {f"{m}.{name}": p.detach().clone() for m in ("p0", "p1", "p2")
            for name, p in learner.module[m].named_parameters()}


@pytest.fixture(scope="module")
def train_batch():
    """A fast-path train batch of sampled auctions (the fast learner's connector's)."""
    config = society_config()
    runner = SocietyEnvRunner(config=config)
    chunks = [chunk for _ in range(2) for chunk in runner.sample()]
    learner = build_learner(config)
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=chunks, shared_data={},
                                       metrics=learner.metrics)
    runner.stop()
    return batch


LEARNER_SETTINGS = {
    "grad_clip_by=value": {"grad_clip": 0.01, "grad_clip_by": "value"},
    "grad_clip_by=norm": {"grad_clip": 0.01, "grad_clip_by": "norm"},
    "grad_clip_by=global_norm": {"grad_clip": 0.01, "grad_clip_by": "global_norm"},
    "use_critic=False": {"use_critic": False},
    "use_kl_loss=False": {"use_kl_loss": False, "kl_coeff": 5.0},
    "kl_coeff": {"kl_coeff": 5.0},
    "vf_clip_param": {"vf_clip_param": 1e-4},
    "vf_loss_coeff": {"vf_loss_coeff": 10.0},
    "clip_param": {"clip_param": 0.01},
    "entropy_coeff": {"entropy_coeff": 0.5},
}


@pytest.mark.parametrize("name", LEARNER_SETTINGS)
def test_a_learner_setting_updates_as_rllibs_stock_learner(name, train_batch):
    """Two minibatch updates on the same batch, from the same weights: the fast learner with
    the setting ends where RLlib's stock PPO learner with it does, and away from where the fast
    learner without it does."""
    settings = LEARNER_SETTINGS[name]
    fast, stock = build_learner(society_config(**settings)), build_learner(society_config("stock", **settings))
    default = build_learner(society_config())
    for other in (stock, default):
        other.module.set_state(fast.module.get_state())
    for learner in (fast, stock, default):
        for _ in range(2):  # the second pass sees a KL term and Adam's state
            learner._update(copy.deepcopy(train_batch))
    have, want, without = parameters(fast), parameters(stock), parameters(default)
    for key in want:
        torch.testing.assert_close(have[key], want[key], rtol=1e-4, atol=2e-6, msg=key)
    assert max(float((have[k] - without[k]).abs().max()) for k in have) > 1e-4, "the setting changed nothing"


@pytest.mark.parametrize("settings", [{"log_gradients": True}, {"grad_clip": 1.0, "grad_clip_by": "global_norm"}])
def test_the_gradient_norm_metric_is_rllibs(settings, train_batch):
    fast, stock = build_learner(society_config(**settings)), build_learner(society_config("stock", **settings))
    stock.module.set_state(fast.module.get_state())
    for learner in (fast, stock):
        learner._update(copy.deepcopy(train_batch))
    fast.after_gradient_based_update(timesteps={})
    for module_id in ("p0", "p1", "p2"):
        key = (module_id, "gradients_default_optimizer_global_norm")
        assert fast.metrics.peek(key) == pytest.approx(float(stock.metrics.peek(key)), rel=1e-4)


def test_use_gae_is_rllibs_gae_at_the_societys_ppo_gamma(train_batch):
    # RLlib's new-stack PPO always runs GAE (use_gae=False only refuses truncate_episodes); with the
    # society's gamma 0 and lambda 1 its value targets are the utilities, as the fast path's.
    with pytest.raises(ValueError, match="Episode truncation is not supported without a value function"):
        society_config(use_gae=False).validate()
    society_config(use_gae=False).env_runners(batch_mode="complete_episodes").validate()
    utilities = train_batch["p1"][Columns.REWARDS].numpy()
    values = np.random.default_rng(0).normal(size=len(utilities)).astype(np.float32)
    targets = compute_value_targets(values=values, rewards=utilities, terminateds=np.zeros_like(utilities),
                                    truncateds=np.zeros_like(utilities), gamma=0.0, lambda_=1.0)
    np.testing.assert_allclose(targets, train_batch["p1"]["value_targets"].numpy(), atol=1e-6)


def test_nan_gradients_are_zeroed_unless_torch_skip_nan_gradients(train_batch):
    for skip in (False, True):
        learner = build_learner(society_config().framework(torch_skip_nan_gradients=skip))
        grads = {learner.get_param_ref(p): torch.full_like(p, 1e-3)
                 for m in ("p0", "p1", "p2") for p in learner.module[m].parameters()}
        broken = learner.get_param_ref(learner.module["p1"].pi.net.mlp[0].weight)
        grads[broken][0, 0] = float("nan")
        out = learner.postprocess_gradients(grads)
        assert math.isnan(out[broken][0, 0]) == skip  # RLlib's torch_skip_nan_gradients: applied as it is


def test_kl_target_and_lr_schedules_adapt_as_in_rllibs_stock_learner(train_batch):
    """After an update, the KL coefficient adapts to kl_target and the lr follows its schedule
    (RLlib's `after_gradient_based_update`) as in the stock learner."""
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    def config(sampler):
        return society_config(sampler, kl_coeff=0.2, kl_target=100.0).training(lr=[[0, 1e-2], [1000, 1e-4]])

    fast, stock = build_learner(config("fast")), build_learner(config("stock"))
    stock.module.set_state(fast.module.get_state())
    for learner in (fast, stock):
        learner._update(copy.deepcopy(train_batch))
        learner.after_gradient_based_update(timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 500})
    for module_id in ("p0", "p1", "p2"):
        kl = float(fast.curr_kl_coeffs_per_module[module_id])
        assert kl == pytest.approx(float(stock.curr_kl_coeffs_per_module[module_id])) and kl == pytest.approx(0.1)  # KL below half its target: halved
        lrs = [learner.get_optimizer(module_id).param_groups[0]["lr"] for learner in (fast, stock)]
        assert lrs[0] == pytest.approx(lrs[1]) and lrs[0] == pytest.approx(1e-2 + 0.5 * (1e-4 - 1e-2))


# --- the env runner -------------------------------------------------------------------------


def test_explore_false_bids_the_mean_bid():
    config = society_config().env_runners(explore=False)
    runner = SocietyEnvRunner(config=config)
    chunks = runner.sample()  # explore from the config, as RLlib's runner reads it
    for chunk in chunks:
        means = TorchBeta.from_logits(torch.as_tensor(chunk.bid_inputs)).to_deterministic().loc[..., 0].numpy()
        np.testing.assert_allclose(chunk.bids, np.repeat(means, 2, axis=1), atol=1e-6)
    explored = runner.sample(explore=True)
    assert any(not np.allclose(c.bids[:, 0], c.bids[:, 1]) for c in explored)  # clones differ only when sampled
    runner.stop()


@pytest.mark.parametrize("count_steps_by", ["env_steps", "agent_steps"])
def test_count_steps_by_counts_what_a_fragment_holds(count_steps_by):
    config = society_config().multi_agent(count_steps_by=count_steps_by).env_runners(
        num_envs_per_env_runner=1, rollout_fragment_length=12)
    runner = SocietyEnvRunner(config=config)
    for _ in range(3):
        chunks = runner.sample()
        env_steps, agent_steps = sum(c.env_steps() for c in chunks), sum(c.agent_steps() for c in chunks)
        assert agent_steps == 6 * env_steps  # 3 primitives x 2 clones, all active
        if count_steps_by == "env_steps":
            assert env_steps == 12
        else:  # RLlib's runner stops at the first step that reaches the fragment's agent steps
            assert 12 <= agent_steps < 12 + 6 and env_steps == 2
    runner.stop()


def test_ppo_trains_counting_agent_steps(ray_session):
    """PPO's sampling loop sums the runner's agent steps when it counts by them."""
    algo = society_config().multi_agent(count_steps_by="agent_steps").build_algo()
    result = algo.train()
    algo.stop()
    sampled = result["env_runners"]["num_agent_steps_sampled_lifetime"]
    env_steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
    assert sum(sampled.values()) == 6 * env_steps >= 64  # 3 primitives x 2 clones; the batch: 64 agent steps


@pytest.mark.parametrize("batch_mode", ["truncate_episodes", "complete_episodes"])
def test_batch_mode_gives_fragments_or_whole_episodes(batch_mode):
    runner = SocietyEnvRunner(config=society_config().env_runners(batch_mode=batch_mode, rollout_fragment_length=3))
    chunks = [chunk for _ in range(3) for chunk in runner.sample()]
    whole = [c.is_done and c.records[0]["step"] == 0 for c in chunks]
    assert all(whole) if batch_mode == "complete_episodes" else not all(whole)
    runner.stop()


class CountingCallback(RLlibCallback):
    """Counts the env runner's episode and sample callbacks, with what each gets."""

    def __init__(self):
        super().__init__()
        self.calls = {name: [] for name in ("on_episode_created", "on_episode_start", "on_episode_step",
                                             "on_episode_end", "on_sample_end")}

    def _record(self, name, **kwargs):
        self.calls[name].append(kwargs)

    def on_episode_created(self, *, episode, **kwargs):
        self._record("on_episode_created", episode=episode, **kwargs)

    def on_episode_start(self, *, episode, **kwargs):
        self._record("on_episode_start", episode=episode, length=len(episode), **kwargs)

    def on_episode_step(self, *, episode, **kwargs):
        self._record("on_episode_step", episode=episode, **kwargs)

    def on_episode_end(self, *, episode, **kwargs):
        self._record("on_episode_end", episode=episode, info=episode.get_infos(-1), **kwargs)

    def on_sample_end(self, *, samples, **kwargs):
        self._record("on_sample_end", samples=samples, **kwargs)


@pytest.mark.parametrize("sampler", ["fast", "stock"])
def test_episode_callbacks_are_made_where_rllibs_runner_makes_them(sampler):
    """Over complete episodes: a created and a start call per episode begun, a step call per
    auction, an end call per episode ended (its last info holds the episode summary), a sample
    call per sample(); the same counts on RLlib's stock runner."""
    function_steps = []
    config = (society_config(sampler).callbacks(CountingCallback, on_episode_step=lambda **kw: function_steps.append(1))
              .env_runners(batch_mode="complete_episodes"))
    runner = (SocietyEnvRunner if sampler == "fast" else MultiAgentEnvRunner)(config=config)
    episodes = [episode for _ in range(2) for episode in runner.sample()]
    calls = runner._callbacks[0].calls
    assert len(calls["on_sample_end"]) == 2
    assert len(calls["on_episode_end"]) == len(episodes) == len({e.id_ for e in episodes})
    # (RLlib's runner also creates an episode object after each end that a reset then replaces.)
    assert len(calls["on_episode_created"]) >= len(calls["on_episode_start"]) >= len(episodes)
    assert all(call["length"] == 0 for call in calls["on_episode_start"])
    # A step call per auction of each episode returned (RLlib's stock runner calls on_episode_start,
    # not on_episode_step, for the reset step); an episode still running at the end of sample()
    # has had its step calls too.
    steps = Counter(call["episode"].id_ for call in calls["on_episode_step"])
    assert all(steps[e.id_] == e.env_steps() for e in episodes)
    assert len(calls["on_episode_step"]) == len(function_steps) >= sum(e.env_steps() for e in episodes)
    ended = [call["episode"] for call in calls["on_episode_end"]]
    assert {e.id_ for e in ended} == {e.id_ for e in episodes}
    for call in calls["on_episode_end"]:
        info = call["info"] if sampler == "fast" else next(iter(call["info"].values()))
        assert EPISODE_INFO in info[AUCTION_INFO]
        assert call["env_runner"] is runner and call["metrics_logger"] is runner.metrics
    if sampler == "fast":
        assert all(isinstance(e, AuctionEpisode) for e in ended)
    runner.stop()


# --- refused settings -----------------------------------------------------------------------


def _refusals():
    """A config that sets each refused setting."""
    model = DefaultModelConfig(fcnet_hiddens=[8], use_lstm=True)
    return {
        "env_to_module_connector": lambda c: c.env_runners(env_to_module_connector=lambda env, spaces, device: MeanStdFilter()),
        "module_to_env_connector": lambda c: c.env_runners(module_to_env_connector=lambda env, spaces: []),
        "learner_connector": lambda c: c.learners(learner_connector=lambda obs, act: []),
        "policy_mapping_fn": lambda c: c.multi_agent(policy_mapping_fn=lambda agent_id, episode, **kw: "p0"),
        "model_config['use_lstm']": lambda c: c.rl_module(model_config=model),
        "torch_compile_learner": lambda c: c.framework(torch_compile_learner=True),
        "torch_compile_worker": lambda c: c.framework(torch_compile_worker=True),
        "torch_ddp_kwargs": lambda c: c.framework(torch_ddp_kwargs={"find_unused_parameters": True}),
        "_torch_grad_scaler_class": lambda c: c.experimental(_torch_grad_scaler_class=torch.amp.GradScaler),
        "_torch_lr_scheduler_classes": lambda c: c.experimental(
            _torch_lr_scheduler_classes=[torch.optim.lr_scheduler.ConstantLR]),
        "input_": lambda c: c.offline_data(input_="/tmp/no-such-episodes"),
    }


def test_every_refusal_has_a_test():
    assert set(_refusals()) == {setting for setting, *_ in FAST_PATH_REFUSES}


@pytest.mark.parametrize("setting", list(_refusals()))
def test_a_setting_the_fast_path_cannot_honour_is_refused(setting):
    message = re.escape(setting) + r" is set, which the society's fast path does not honour: .*Use sampler='stock'"
    with pytest.raises(ValueError, match=message):
        _refusals()[setting](society_config()).validate()
    _refusals()[setting](society_config("stock")).validate()  # RLlib's own path runs it


def test_bids_are_not_renormalized_and_a_missing_gpu_is_named():
    with pytest.raises(ValueError, match=r"normalize_actions=True is not allowed"):
        society_config().environment(normalize_actions=True).validate()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"num_gpus_per_learner=1 is not allowed.*no GPU"):
            society_config().learners(num_gpus_per_learner=1).validate()
