"""The fast path's `SocietyMultiRLModule` and `SocietyPPOLearner`: RLlib's own module per primitive,
evaluated together, and PPO's update batched over primitives yet the same as RLlib's per module.

Every primitive must train as if it were its own RLlib policy: its loss is RLlib's PPO loss on its
own samples, its gradients are clipped by their own norm, and its KL coefficient adapts to its
own KL.
"""

import copy
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing

from experiments.algo_config import build_algo_config
from rllib_society.bidder import BidderCatalog, TorchBeta
from rllib_society.chunk_connector import SCORED_VALUES
from rllib_society.learner import mean_fit_loss
from experiments.config_files import load_config
from rllib_society.society_module import SocietyMultiRLModule

OBS = gym.spaces.Box(0, 1, (7,), np.float32)
BID = gym.spaces.Box(0, 1, (1,), np.float32)


@pytest.fixture(scope="module")
def algo(ray_session):
    config = load_config("configs/chain.yaml", {"clones": 2, "train_batch_size_per_learner": 64,
                                                "minibatch_size": 64, "env_config": {"num_actions": 3}},
                         ["value_range=null"])  # Beta bids: the clip test's gradient norms are calibrated on them
    algo = build_algo_config(config).build_algo()
    yield algo
    algo.stop()


def society(model_config, primitives=3, observation_space=OBS, inference_only=False):
    return MultiRLModuleSpec(
        multi_rl_module_class=SocietyMultiRLModule,
        rl_module_specs={f"p{k}": RLModuleSpec(
            module_class=DefaultPPOTorchRLModule, observation_space=observation_space, action_space=BID,
            inference_only=inference_only, catalog_class=BidderCatalog, model_config=model_config)
            for k in range(primitives)},
    ).build()


def test_each_primitive_is_rllibs_own_module_under_its_id(algo):
    assert "multi-agent=True" in repr(algo)  # what Ray's log line shows
    modules = {m: algo.get_module(m) for m in ("p0", "p1", "p2")}
    assert all(isinstance(m, DefaultPPOTorchRLModule) for m in modules.values())
    assert set(algo.config.policies) == {"p0", "p1", "p2"}
    ids = [{id(p) for p in m.parameters()} for m in modules.values()]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])  # no parameter shared


@pytest.mark.parametrize("activation", ["relu", "tanh", "linear", "silu", "elu"])
@pytest.mark.parametrize("vf_share_layers", [False, True])
def test_stacked_mlps_compute_what_each_module_computes(vf_share_layers, activation):
    # model_config's activations and vf_share_layers: the stacked forward is each RLlib module's own.
    module = society({"fcnet_hiddens": [16, 8], "fcnet_activation": activation, "head_fcnet_hiddens": [4],
                      "head_fcnet_activation": activation, "vf_share_layers": vf_share_layers})
    assert module._parts is not None and (module._parts["critic"] is None) == vf_share_layers
    obs = torch.rand(5, 7)
    batch = {m: {Columns.OBS: obs + 0.1 * k} for k, m in enumerate(module.module_ids)}
    stacked = module.forward_train(batch)
    inputs, values = module.bid_inputs(obs), module.state_values(obs)
    for k, m in enumerate(module.module_ids):
        own = module[m].forward_train(batch[m])
        torch.testing.assert_close(stacked[m][Columns.ACTION_DIST_INPUTS], own[Columns.ACTION_DIST_INPUTS])
        torch.testing.assert_close(stacked[m][Columns.VF_PREDS], module[m].compute_values(batch[m]))
        torch.testing.assert_close(inputs[:, k], module[m]._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])
        torch.testing.assert_close(values[k], module[m].compute_values({Columns.OBS: obs}))
    # The stacked gradients, handed to the modules' parameters, are each module's own.
    twin = copy.deepcopy(module["p1"])
    twin.compute_values(batch["p1"]).sum().backward()
    stacked["p1"][Columns.VF_PREDS].sum().backward()
    module.scatter_grads(["p0", "p1"])
    grad = lambda p: torch.zeros_like(p) if p.grad is None else p.grad  # noqa: E731
    assert any(p.grad is not None for p in module["p1"].parameters())
    for own, expected in zip(module["p1"].parameters(), twin.parameters()):
        torch.testing.assert_close(grad(own), grad(expected))
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in module["p0"].parameters())
    assert all(p.grad is None for p in module["p2"].parameters())  # not asked for


def test_stacked_weights_follow_the_modules_parameters():
    """Optimizer steps and loaded weights reach the stacked forward, also when a parameter's
    storage is replaced; a subset of modules (the others frozen) is evaluated alone."""
    module = society({"fcnet_hiddens": [8], "vf_share_layers": False})
    obs = torch.rand(4, 7)
    own = lambda m: module[m].compute_values({Columns.OBS: obs})  # noqa: E731
    module.state_values(obs)
    with torch.no_grad():
        module["p2"].vf.net.mlp[0].bias.add_(1.0)  # in place, as an optimizer step
    torch.testing.assert_close(module.state_values(obs)[2], own("p2"))
    state = {k: v + 1.0 for k, v in module["p0"].state_dict().items()}
    module["p0"].load_state_dict(state, assign=True)  # new storage
    torch.testing.assert_close(module.state_values(obs)[0], own("p0"))
    out = module.forward_train({m: {Columns.OBS: obs} for m in ("p0", "p2")})
    assert set(out) == {"p0", "p2"}
    torch.testing.assert_close(out["p2"][Columns.VF_PREDS], own("p2"))


def test_inference_only_modules_bid_stacked():
    module = society({"fcnet_hiddens": [16], "vf_share_layers": False}, inference_only=True)
    assert module._parts is not None and module._parts["vf"] is None
    obs = torch.rand(4, 7)
    for k, m in enumerate(module.module_ids):
        torch.testing.assert_close(module.bid_inputs(obs)[:, k],
                                   module[m]._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])


def test_cnn_modules_run_one_after_the_other():
    module = society({"conv_filters": [[4, [4, 4], 2]], "head_fcnet_hiddens": [8], "vf_share_layers": True},
                     primitives=2, observation_space=gym.spaces.Box(0, 1, (16, 16, 1), np.float32))
    assert module._parts is None
    obs = torch.rand(3, 16, 16, 1)
    assert module.bid_inputs(obs).shape == (3, 2, 2) and module.state_values(obs).shape == (2, 3)
    out = module.forward_train({m: {Columns.OBS: obs} for m in module.module_ids})
    assert out["p1"][Columns.ACTION_DIST_INPUTS].shape == (3, 2)


def train_batch(learner, seed=0, rows=32, clones=None):
    """A hand-made batch per module: random states, bids, advantages; about half masked out.
    With `clones`, as the learner's connector makes it: one state tensor shared by all modules,
    each state on `clones` rows in a row."""
    rng = np.random.default_rng(seed)
    batch = {}
    shared = None
    if clones:
        shared = torch.as_tensor(np.eye(7, dtype=np.float32)[np.repeat(rng.integers(0, 7, rows // clones), clones)])
    for module_id in learner.module.keys():
        obs = shared if clones else torch.as_tensor(np.eye(7, dtype=np.float32)[rng.integers(0, 7, rows)])
        with torch.no_grad():
            inputs = learner.module[module_id]._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        inputs = inputs + 0.3 * torch.as_tensor(rng.normal(size=inputs.shape), dtype=torch.float32)
        actions = torch.as_tensor(rng.uniform(0.05, 0.95, (rows, 1)), dtype=torch.float32)
        batch[module_id] = {
            Columns.OBS: obs,
            Columns.ACTIONS: actions,
            Columns.ACTION_DIST_INPUTS: inputs,
            Columns.ACTION_LOGP: TorchBeta.from_logits(inputs).logp(actions),
            Postprocessing.ADVANTAGES: torch.as_tensor(rng.normal(size=rows), dtype=torch.float32),
            Postprocessing.VALUE_TARGETS: torch.as_tensor(rng.uniform(size=rows), dtype=torch.float32),
            Columns.LOSS_MASK: torch.as_tensor(rng.random(rows) < 0.5),
        }
    return batch


@pytest.mark.parametrize(("use_kl_loss", "clones"), [(True, None), (False, None), (True, 2)])
def test_the_batched_loss_is_rllibs_ppo_loss_of_each_module(algo, use_kl_loss, clones):
    learner = algo.learner_group._learner
    learner.config._is_frozen = False
    learner.config.use_kl_loss = use_kl_loss
    batch = train_batch(learner, clones=clones)
    if clones:  # the stacked forward runs each state once for its clones' rows
        assert learner.module._repeated_rows(batch["p0"][Columns.OBS]) == clones == learner.module.rows_per_state
    ours = learner.compute_losses(fwd_out=learner.module.forward_train(batch), batch=batch)  # stacked
    for module_id in batch:
        rllib = PPOTorchLearner.compute_loss_for_module(
            learner, module_id=module_id, config=learner.config.get_config_for_module(module_id),
            batch=batch[module_id], fwd_out=learner.module[module_id].forward_train(batch[module_id]))
        torch.testing.assert_close(ours[module_id], rllib)
    learner.config.use_kl_loss = True


def test_a_scored_rows_loss_is_the_mean_fit(algo):
    """With ``exploration.scored_loss: mean`` (a ``SCORED_VALUES`` column), a row with a value v
    has the loss (m - v)^2 / (2 s^2), m and s^2 torch's own Beta mean and variance, in place of
    PPO's clipped surrogate; a row whose value is NaN keeps PPO's; the critic's loss is PPO's."""
    learner = algo.learner_group._learner
    learner.config._is_frozen = False
    learner.config.use_kl_loss = False
    batch = train_batch(learner, seed=1)
    rng = np.random.default_rng(1)
    want = {}
    for module_id, columns in batch.items():
        rows = len(columns[Columns.OBS])
        values = torch.as_tensor(np.where(rng.random(rows) < 0.5, rng.uniform(size=rows), np.nan), dtype=torch.float32)
        scored = ~torch.isnan(values)
        assert scored.any() and (~scored).any()
        without_policy_loss = {**columns, Postprocessing.ADVANTAGES: torch.where(scored, 0.0, columns[Postprocessing.ADVANTAGES])}
        ppo = PPOTorchLearner.compute_loss_for_module(
            learner, module_id=module_id, config=learner.config.get_config_for_module(module_id),
            batch=without_policy_loss, fwd_out=learner.module[module_id].forward_train(without_policy_loss))
        bid = TorchBeta.from_logits(learner.module[module_id].forward_train(columns)[Columns.ACTION_DIST_INPUTS])
        beta = torch.distributions.Beta(bid.alpha[:, 0], bid.beta[:, 0])
        fit = (beta.mean - values) ** 2 / (2 * beta.variance)
        mask = columns[Columns.LOSS_MASK] & scored
        want[module_id] = ppo + fit[mask].sum() / columns[Columns.LOSS_MASK].sum()
        columns[SCORED_VALUES] = values
    ours = learner.compute_losses(fwd_out=learner.module.forward_train(batch), batch=batch)
    for module_id in batch:
        torch.testing.assert_close(ours[module_id], want[module_id])
    learner.config.use_kl_loss = True


def test_the_mean_fit_moves_a_pinned_bid_as_fast_as_a_free_one():
    """The fit's gradient in the mean logit x is (m - v)(alpha + beta + 1): it does not vanish as
    the bid's mean saturates at the edge of [0, 1] (m = sigmoid(x)), where PPO's does."""
    logits = torch.tensor([[-9.0, 5.0], [0.0, 5.0]], requires_grad=True)  # a mean at 1e-4, one at 0.5
    bid = TorchBeta.from_logits(logits)
    mean_fit_loss(bid, torch.tensor([1.0, 1.0])).sum().backward()
    with torch.no_grad():
        mean = bid.alpha / (bid.alpha + bid.beta)
        expected = ((mean - 1.0) * (bid.alpha + bid.beta + 1))[:, 0]
    torch.testing.assert_close(logits.grad[:, 0], expected)
    assert logits.grad[0, 0] < logits.grad[1, 0] < 0  # the pinned bid, farther from v, is pushed harder


def test_gradients_are_clipped_per_primitive(algo):
    learner = algo.learner_group._learner
    clip = learner.config.get_config_for_module("p0").grad_clip
    grads = {}
    for module_id, value in (("p0", 100.0), ("p1", 1e-3), ("p2", 0.0)):
        for p in learner.module[module_id].parameters():
            grads[learner.get_param_ref(p)] = torch.full_like(p, value)
    clipped = learner.postprocess_gradients(grads)
    norm = lambda m: torch.sqrt(sum((clipped[learner.get_param_ref(p)] ** 2).sum()  # noqa: E731
                                    for p in learner.module[m].parameters()))
    assert float(norm("p0")) == pytest.approx(clip, rel=1e-4)
    for p in learner.module["p1"].parameters():  # far below the clip: untouched by p0's norm
        torch.testing.assert_close(clipped[learner.get_param_ref(p)], torch.full_like(p, 1e-3))


def test_non_finite_gradients_are_zeroed(algo):
    learner = algo.learner_group._learner
    assert not learner.config.torch_skip_nan_gradients  # RLlib's default: zeroed
    grads = {learner.get_param_ref(p): torch.full_like(p, 1e-3)
             for m in learner.module.keys() for p in learner.module[m].parameters()}
    broken = learner.get_param_ref(learner.module["p1"].pi.net.mlp[0].weight)
    grads[broken][0, 0] = float("nan")
    clipped = learner.postprocess_gradients(grads)
    assert torch.isfinite(clipped[broken]).all() and clipped[broken][0, 0] == 0
    assert clipped[broken][0, 1] == pytest.approx(1e-3)


def test_rllibs_per_module_learner_metrics_and_kl_coefficients(algo):
    result = algo.train()
    for module_id in ("p0", "p1", "p2"):
        metrics = result["learners"][module_id]
        for key in ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "curr_kl_coeff",
                    "default_optimizer_learning_rate", "num_module_steps_trained"):
            assert key in metrics, (module_id, key)
    coeffs = {m: float(algo.learner_group._learner.curr_kl_coeffs_per_module[m]) for m in ("p0", "p1", "p2")}
    assert all(c > 0 for c in coeffs.values())



def test_every_sampled_auction_is_trained_on_once(algo):
    # The learner counts the auctions of the chunks it trained on (each once, not once per epoch);
    # over iterations they add up to exactly what the env runners sampled.
    for _ in range(3):
        result = algo.train()
    trained = result["learners"]["__all_modules__"]["num_env_steps_trained_lifetime"]
    assert trained == result["env_runners"]["num_env_steps_sampled_lifetime"] > 0
    assert result["learners"]["__all_modules__"]["num_env_steps_trained"] == result["env_runners"]["num_env_steps_sampled"]


def test_frozen_primitives_stay_and_per_module_overrides_apply(ray_session):
    from ray.rllib.algorithms.ppo import PPOConfig

    # Beta bids: with bids at any scale every module, frozen or not, is re-mapped to the new value
    # scale after an update (its bids' values stay; its weights do not).
    config = load_config("configs/chain.yaml", {"train_batch_size_per_learner": 64, "minibatch_size": 32,
                                                "env_config": {"num_actions": 3}, "lr": 1e-2}, ["value_range=null"])
    algo = (build_algo_config(config)
            .multi_agent(policies_to_train=["p0", "p2"])
            .rl_module(algorithm_config_overrides_per_module={"p2": PPOConfig.overrides(lr=1e-6)})
            .build_algo())
    try:
        before = algo.learner_group.get_weights()
        for _ in range(2):
            result = algo.train()
        after = algo.learner_group.get_weights()
        change = {m: max(float(abs(after[m][k] - before[m][k]).max()) for k in before[m]) for m in before}
        assert change["p1"] == 0.0  # frozen
        assert change["p0"] > 1e-3 and 0.0 < change["p2"] < 1e-4  # its own learning rate
        assert "policy_loss" in result["learners"]["p0"] and "policy_loss" not in result["learners"].get("p1", {})
    finally:
        algo.stop()


def test_two_data_parallel_learners_keep_the_same_weights(ray_session):
    # RLlib's LearnerGroup with 2 learner actors (gloo): each trains on its shard of the chunks;
    # the stacked gradients are averaged over both, so their modules stay equal.
    config = load_config("configs/chain.yaml", {"train_batch_size_per_learner": 64, "minibatch_size": 32},
                         ["rllib.num_learners=2", "rllib.num_cpus_per_learner=0.5"])
    algo = build_algo_config(config).build_algo()
    def each_learners_weights():
        results = algo.learner_group.foreach_learner(
            lambda learner: {m: {k: v.detach().clone() for k, v in learner.module[m].state_dict().items()}
                             for m in ("p0", "p1")})
        return [result.get() for result in results.result_or_errors]

    try:
        before, _ = each_learners_weights()
        for _ in range(2):
            algo.train()
        first, second = each_learners_weights()
        for m in first:
            for k in first[m]:
                torch.testing.assert_close(first[m][k], second[m][k], rtol=0, atol=0)
        assert max(float((first["p1"][k] - before["p1"][k]).abs().max()) for k in first["p1"]) > 1e-4
    finally:
        algo.stop()


def test_the_fused_adam_call_steps_each_module_as_its_own_optimizer_would(algo):
    import copy

    learner = algo.learner_group._learner
    module_ids = list(learner.module.keys())
    twins = {m: copy.deepcopy((learner.module[m], learner.get_optimizer(m))) for m in module_ids}
    for step in range(2):  # the first step sets Adam's state up, the second uses it
        torch.manual_seed(step)
        grads = {learner.get_param_ref(p): torch.randn_like(p) for m in module_ids for p in learner.module[m].parameters()}
        learner.apply_gradients(grads)
        for m, (twin, optimizer) in twins.items():
            for own, mirror in zip(learner.module[m].parameters(), twin.parameters()):
                mirror.grad = grads[learner.get_param_ref(own)].clone()
            optimizer.step()
    for m, (twin, _) in twins.items():
        for own, mirror in zip(learner.module[m].parameters(), twin.parameters()):
            torch.testing.assert_close(own, mirror)


def test_a_stacked_update_is_each_modules_own_rllib_update(algo):
    """Loss, backward, clip and Adam through the stacked weights, gradients and Adam state equal
    RLlib's update of each module alone (its loss, global-norm clip and its own Adam)."""
    import copy

    learner = algo.learner_group._learner
    module_ids = learner.module.module_ids
    twins = {m: copy.deepcopy((learner.module[m], learner.get_optimizer(m))) for m in module_ids}
    for step in range(4):  # Adam's state: set up by torch, then stacked; clones' rows shared or not
        batch = train_batch(learner, seed=step, clones=2 if step % 2 else None)
        batch["p0"][Postprocessing.ADVANTAGES] *= 1e3  # p0's gradient is clipped, the others' not
        grads = learner.compute_gradients(learner.compute_losses(fwd_out=learner.module.forward_train(batch), batch=batch))
        learner.apply_gradients(learner.postprocess_gradients(grads))
        for m, (twin, optimizer) in twins.items():
            optimizer.zero_grad()
            config = learner.config.get_config_for_module(m)
            alone = SimpleNamespace(module={m: twin}, metrics=learner.metrics,  # RLlib's learner of one module
                                    curr_kl_coeffs_per_module=learner.curr_kl_coeffs_per_module,
                                    entropy_coeff_schedulers_per_module=learner.entropy_coeff_schedulers_per_module)
            PPOTorchLearner.compute_loss_for_module(alone, module_id=m, config=config, batch=batch[m],
                                                   fwd_out=twin.forward_train(batch[m])).backward()
            norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), config.grad_clip)
            assert (norm > config.grad_clip) == (m == "p0")
            optimizer.step()
    assert learner._adam_stacks  # the last steps ran on the stacks
    for m, (twin, optimizer) in twins.items():
        for own, mirror in zip(learner.module[m].parameters(), twin.parameters()):
            torch.testing.assert_close(own, mirror)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                torch.testing.assert_close(learner.get_optimizer(m).state[own][key], optimizer.state[mirror][key])


def test_minibatches_keep_an_auctions_clones_together():
    from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch

    from rllib_society.learner import SocietyMinibatches

    rows = torch.arange(24.0)  # row r: auction r // 2, clone r % 2
    batch = MultiAgentBatch({m: SampleBatch({"row": rows + k}) for k, m in enumerate(("p0", "p1"))}, env_steps=12)
    seen = []
    for minibatch in SocietyMinibatches(batch, num_epochs=2, minibatch_size=7, shuffle=True, group=2):
        p0, p1 = minibatch.policy_batches["p0"]["row"], minibatch.policy_batches["p1"]["row"]
        assert len(p0) % 2 == 0 and len(p0) <= 7  # whole auctions: 7 rounds down to 6
        assert torch.equal(p0[0::2] // 2, p0[1::2] // 2) and torch.equal(p0[0::2] % 2, torch.zeros(len(p0) // 2))
        assert torch.equal(p1, p0 + 1)  # every module the same rows
        seen.append(p0)
    epochs = torch.cat(seen).reshape(2, -1)
    assert all(sorted(epoch.tolist()) == rows.tolist() for epoch in epochs)  # each epoch: every row once


@pytest.mark.parametrize("clones", [None, 2])
def test_the_loss_restacks_the_stacked_outputs_without_copying_them(algo, clones):
    # Each module's outputs are slices of one stacked tensor; restacked by a new stack instead,
    # the backward pass would fill a full (modules, rows) gradient per module (quadratic).
    from rllib_society.learner import _stacked_column

    learner = algo.learner_group._learner
    batch = train_batch(learner, clones=clones)
    out = learner.module.forward_train(batch)
    for key in (Columns.ACTION_DIST_INPUTS, Columns.VF_PREDS):
        columns = [out[m][key] for m in learner.module.module_ids]
        assert _stacked_column(columns).data_ptr() == columns[0].data_ptr(), key


def _change_p1(module, change: str) -> None:
    """Changes primitive p1's parameters (of 4) the way `change` names."""
    p1 = module["p1"]
    new = {k: torch.randn_like(v) for k, v in p1.state_dict().items()}
    if change == "load_state_dict":
        p1.load_state_dict(new)
    elif change == "load_state_dict(assign=True)":
        p1.load_state_dict(new, assign=True)
    elif change == ".to() and back, then in place":  # new storage, then values written into it
        p1.to(torch.float64).to(torch.float32)
        p1.load_state_dict(new)
    elif change == "set_state":
        p1.set_state({k: v.numpy() for k, v in new.items()})
    elif change == "add_module(override=True)":
        twin = copy.deepcopy(p1)
        twin.load_state_dict(new)
        module.add_module("p1", twin, override=True)


MODULE_CHANGES = ["load_state_dict", "load_state_dict(assign=True)", ".to() and back, then in place", "set_state",
                  "add_module(override=True)"]


@pytest.mark.parametrize("change", MODULE_CHANGES)
def test_any_change_to_one_modules_parameters_is_what_the_society_then_computes(change):
    module = society({"fcnet_hiddens": [8], "vf_share_layers": False}, primitives=4)
    obs = torch.rand(5, 7)
    before = module.bid_inputs(obs)[:, 1].detach().clone()  # a forward pass first: the stacks are tied
    module.state_values(obs)
    _change_p1(module, change)
    own = module["p1"]
    inputs = own._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    assert not torch.allclose(inputs, before)
    torch.testing.assert_close(module.bid_inputs(obs)[:, 1], inputs)
    torch.testing.assert_close(module.state_values(obs)[1], own.compute_values({Columns.OBS: obs}))
    out = module.forward_train({m: {Columns.OBS: obs} for m in module.module_ids})
    torch.testing.assert_close(out["p1"][Columns.ACTION_DIST_INPUTS], inputs)
    with module.tied():  # a sample() call or an update: checked once at its start
        torch.testing.assert_close(module.bid_inputs(obs)[:, 1], inputs)


def test_a_sample_call_checks_the_parameters_once_not_per_forward_pass(monkeypatch):
    from rllib_society.env_runner import SocietyEnvRunner
    from rllib_society.society_module import TiedMLPs

    config = load_config("configs/chain.yaml", {"num_envs_per_env_runner": 2, "rollout_fragment_length": 20})
    runner = SocietyEnvRunner(config=build_algo_config(config))
    parts = sum(part is not None for part in runner.module._parts.values())
    calls = []
    original = TiedMLPs.tie
    monkeypatch.setattr(TiedMLPs, "tie", lambda self: calls.append(1) or original(self))
    runner.sample()  # 20 steps: 20 forward passes
    assert len(calls) == parts
    runner.stop()


def test_p1_loaded_with_assign_into_a_running_society_is_what_it_bids_with():
    from rllib_society.env_runner import SocietyEnvRunner

    config = load_config("configs/chain.yaml", {"num_envs_per_env_runner": 2, "env_config": {"num_actions": 4}})
    runner = SocietyEnvRunner(config=build_algo_config(config))
    runner.sample()  # forward passes: the stacks are tied
    open_before = {episode.id_ for episode in runner._open}  # each holds its last auction, bid before the change
    _change_p1(runner.module, "load_state_dict(assign=True)")
    for chunk in filter(len, runner.sample()):
        carried = int(chunk.id_ in open_before)
        own = runner.module["p1"]._forward({Columns.OBS: torch.as_tensor(chunk.obs)})[Columns.ACTION_DIST_INPUTS]
        np.testing.assert_allclose(chunk.bid_inputs[carried:, 1], own.detach().numpy()[carried:], atol=1e-6)
    runner.stop()


def test_one_modules_state_dict_and_checkpoint_hold_its_own_tensors_only(tmp_path):
    import io

    sizes = {}
    for primitives in (4, 64):
        module = society({"fcnet_hiddens": [16]}, primitives=primitives)
        module.bid_inputs(torch.rand(2, 7))
        buffer = io.BytesIO()
        torch.save(module["p1"].state_dict(), buffer)
        module["p1"].save_to_path(tmp_path / str(primitives))
        saved = sum(f.stat().st_size for f in (tmp_path / str(primitives)).rglob("*") if f.is_file() and "pkl" in f.name
                    and "ctor" not in f.name and "metadata" not in f.name)
        sizes[primitives] = (len(buffer.getvalue()), saved)
        # The parameters still view the stack (the copies are the state_dict's own).
        assert module["p1"].pi.net.mlp[0].weight.untyped_storage().nbytes() > module["p1"].pi.net.mlp[0].weight.nbytes
    assert sizes[4] == sizes[64]


def test_restoring_one_modules_checkpoint_is_what_the_society_bids_and_trains_with(ray_session, tmp_path):
    config = load_config("configs/chain.yaml", {"train_batch_size_per_learner": 64, "minibatch_size": 32,
                                                "env_config": {"num_actions": 4}})
    algo = build_algo_config(config).build_algo()
    try:
        algo.train()
        checkpoint = Path(algo.save_to_path(tmp_path / "checkpoint"))
        saved = algo.learner_group._learner.module["p1"]
        obs = torch.eye(algo.env_runner.module["p1"].observation_space.shape[0])
        want = saved._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS].detach().clone()
        algo.train()  # p1 moves on
        component = "learner_group/learner/rl_module/p1"
        algo.restore_from_path(checkpoint / component, component=component)
        learner = algo.learner_group._learner
        torch.testing.assert_close(learner.module.bid_inputs(obs)[:, 1], want)  # what it trains from
        # (RLlib's sync skips env runners whose weights_seq_no is not older; restored in place:)
        algo.env_runner.module["p1"].restore_from_path(checkpoint / component)
        torch.testing.assert_close(algo.env_runner.module.bid_inputs(obs)[:, 1], want)  # what it bids with
    finally:
        algo.stop()


def test_two_learners_with_shards_of_different_sizes_stay_in_step(ray_session):
    """One episode of 9 auctions over two learners: shards of 5 and 4 auctions, so 10 and 8 rows
    per module, 2 and 1 minibatches of 8 rows per epoch. Each learner all-reduces its gradients
    per minibatch, so both must run the same number or the update hangs."""
    import threading

    import ray

    from rllib_society import SocietyEnv
    from rllib_society.env_runner import SocietyEnvRunner

    config = load_config("configs/chain.yaml", {"batch_mode": "complete_episodes", "num_envs_per_env_runner": 1},
                         ["rllib.num_learners=2", "rllib.num_cpus_per_learner=0.5"])
    algo_config = build_algo_config(config)
    runner = SocietyEnvRunner(config=algo_config)
    long = next(chunk for _ in range(20) for chunk in runner.sample() if len(chunk) >= 9)
    runner.stop()
    learner_group = algo_config.build_learner_group(env=SocietyEnv(algo_config.env_config))

    def weights():
        results = learner_group.foreach_learner(
            lambda learner: ({m: {k: v.detach().clone() for k, v in learner.module[m].state_dict().items()}
                              for m in ("p0", "p1")}, sum(e.num_rows() for e in learner.trained_rows)))
        return [result.get() for result in results.result_or_errors]

    try:
        (before, _), _ = weights()
        done = threading.Thread(target=lambda: learner_group.update(
            episodes=[long[:9]], num_epochs=3, minibatch_size=8, shuffle_batch_per_epoch=True), daemon=True)
        done.start()
        done.join(timeout=120)
        assert not done.is_alive(), "the learners hung: their minibatch counts differ"
        (first, rows_first), (second, rows_second) = weights()
        assert {rows_first, rows_second} == {5 * 4, 4 * 4}  # 2 primitives x 2 clones per auction: uneven shards
        for m in first:
            for k in first[m]:
                torch.testing.assert_close(first[m][k], second[m][k], rtol=0, atol=0)
        assert max(float((first["p1"][k] - before["p1"][k]).abs().max()) for k in first["p1"]) > 1e-5
    finally:
        for actor in learner_group._worker_manager.actors().values():
            ray.kill(actor)
