"""SocietyModule and its learner: one independent policy per primitive inside one RLlib module.

Every primitive must train as if it were its own RLlib policy: its loss only sees its own
bidders' samples, its gradients are clipped by their own norm, and its KL coefficient adapts to
its own KL.
"""

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from rllib_society.algo_config import build_algo_config
from rllib_society.config import load_config
from rllib_society.auction_env import AuctionEnv
from rllib_society.society_module import SocietyModule
from rllib_society.utility_connector import BIDDER_MASK


@pytest.fixture(scope="module")
def algo(ray_session):
    config = load_config("configs/chain.yaml", {"clones": 2, "train_batch_size_per_learner": 64,
                                                "minibatch_size": 64, "env_config": {"num_actions": 3}})
    algo = build_algo_config(config).build_algo()
    yield algo
    algo.stop()


def society(algo):
    learner = algo.learner_group._learner
    (module_id, module), = learner.module._rl_modules.items()
    return learner, module_id, module


def test_outputs_give_each_clone_its_primitive_policy(algo):
    _, _, module = society(algo)
    assert isinstance(module, SocietyModule) and len(module.bidders) == 3 and module.clones == 2
    obs = torch.eye(7)
    with torch.no_grad():
        out = module.forward_exploration({Columns.OBS: obs})
        values = module.compute_values({Columns.OBS: obs})
        bids = module.mean_bids(obs)
    inputs = out[Columns.ACTION_DIST_INPUTS]
    assert inputs.shape == (7, 12) and values.shape == (7, 3) and bids.shape == (7, 3)
    means, concentrations = inputs[:, :6], inputs[:, 6:]
    torch.testing.assert_close(means[:, 0::2], means[:, 1::2])  # clones share their policy
    torch.testing.assert_close(concentrations[:, 0::2], concentrations[:, 1::2])
    torch.testing.assert_close(bids, torch.sigmoid(means[:, 0::2]))
    # Separate networks: no parameter is shared between two primitives.
    ids = [{id(p) for p in bidder.parameters()} for bidder in module.bidders]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])


def train_batch(module, seed=0, rows=32):
    """A hand-made train batch: random states, bids and advantages; half the samples masked."""
    rng = np.random.default_rng(seed)
    obs = torch.as_tensor(np.eye(7, dtype=np.float32)[rng.integers(0, 7, rows)])
    with torch.no_grad():
        inputs = module.forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: torch.as_tensor(rng.uniform(0.05, 0.95, (rows, 6)), dtype=torch.float32),
        Columns.ACTION_DIST_INPUTS: inputs + 0.3 * torch.as_tensor(rng.normal(size=inputs.shape), dtype=torch.float32),
        Postprocessing.ADVANTAGES: torch.as_tensor(rng.normal(size=(rows, 6)), dtype=torch.float32),
        Postprocessing.VALUE_TARGETS: torch.as_tensor(rng.uniform(size=(rows, 6)), dtype=torch.float32),
        BIDDER_MASK: torch.as_tensor(rng.random((rows, 6)) < 0.5),
    }


def gradients(learner, module_id, module, batch):
    module.zero_grad()
    loss = learner.compute_loss_for_module(
        module_id=module_id, config=learner.config.get_config_for_module(module_id),
        batch=batch, fwd_out=module.forward_train(batch))
    loss.backward()
    return [torch.cat([p.grad.flatten() for p in bidder.parameters()]) for bidder in module.bidders]


def test_each_primitive_learns_only_from_its_own_bidders(algo):
    learner, module_id, module = society(algo)
    batch = train_batch(module)
    before = gradients(learner, module_id, module, batch)
    assert all(g.abs().sum() > 0 for g in before)
    # Change everything primitive 2 owns (bidder columns 4, 5): the others' gradients stay.
    changed = {k: v.clone() for k, v in batch.items()}
    for key in (Columns.ACTIONS, Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS):
        changed[key][:, 4:] = torch.rand_like(changed[key][:, 4:])
    after = gradients(learner, module_id, module, changed)
    torch.testing.assert_close(after[0], before[0])
    torch.testing.assert_close(after[1], before[1])
    assert not torch.allclose(after[2], before[2])
    # Masking all of primitive 1's samples leaves it without a gradient.
    changed[BIDDER_MASK][:, 2:4] = False
    assert gradients(learner, module_id, module, changed)[1].abs().sum() == 0


def test_gradients_are_clipped_per_primitive(algo):
    learner, module_id, module = society(algo)
    config = learner.config.get_config_for_module(module_id)
    grads = {learner.get_param_ref(p): torch.full_like(p, 0.0) for p in module.parameters()}
    big, small = module.bidders[0], module.bidders[1]
    for p in big.parameters():
        grads[learner.get_param_ref(p)] = torch.full_like(p, 100.0)
    for p in small.parameters():
        grads[learner.get_param_ref(p)] = torch.full_like(p, 1e-3)
    clipped = learner.postprocess_gradients_for_module(
        module_id=module_id, config=config, module_gradients_dict=grads)
    norm = lambda bidder: torch.sqrt(sum((clipped[learner.get_param_ref(p)] ** 2).sum() for p in bidder.parameters()))  # noqa: E731
    assert float(norm(big)) == pytest.approx(config.grad_clip, rel=1e-4)
    for p in small.parameters():  # far below the clip: untouched by the big one's norm
        torch.testing.assert_close(clipped[learner.get_param_ref(p)], torch.full_like(p, 1e-3))


def test_non_finite_gradients_are_zeroed(algo):
    learner, module_id, module = society(algo)
    config = learner.config.get_config_for_module(module_id)
    assert config.torch_skip_nan_gradients  # RLlib's own per-tensor check is left to the learner
    grads = {learner.get_param_ref(p): torch.full_like(p, 1e-3) for p in module.parameters()}
    broken = learner.get_param_ref(module.bidders[1].pi.net.mlp[0].weight)
    grads[broken][0, 0] = float("nan")
    clipped = learner.postprocess_gradients_for_module(
        module_id=module_id, config=config, module_gradients_dict=grads)
    assert torch.isfinite(clipped[broken]).all() and clipped[broken][0, 0] == 0
    assert clipped[broken][0, 1] == pytest.approx(1e-3)


def test_kl_coefficients_adapt_per_primitive(algo):
    learner, module_id, _ = society(algo)
    config = learner.config.get_config_for_module(module_id)
    coeffs = learner._kl_coeffs[module_id]
    coeffs.fill_(config.kl_coeff)
    learner._last_kl[module_id] = np.array([10 * config.kl_target, config.kl_target, 0.0])
    learner._update_module_kl_coeff(module_id=module_id, config=config, kl_loss=0.0)
    np.testing.assert_allclose(coeffs.numpy(), config.kl_coeff * np.array([1.5, 1.0, 0.5]), rtol=1e-6)


def test_the_sampled_action_is_the_bid_vector(algo):
    episodes = algo.env_runner.sample(num_timesteps=64, random_actions=False)
    actions = np.concatenate([e.get_actions() for e in episodes])
    assert actions.shape[1] == AuctionEnv({"env": "Chain-v0", "env_config": {"num_actions": 3}}).num_bidders
    assert ((actions > 0) & (actions < 1)).all()


@pytest.mark.parametrize("vf_share_layers", [False, True])
def test_stacked_mlps_compute_what_each_bidder_computes(vf_share_layers):
    import gymnasium as gym

    module = SocietyModule(
        observation_space=gym.spaces.Box(0, 1, (7,), np.float32),
        action_space=gym.spaces.Box(0, 1, (6,), np.float32),
        model_config={"num_primitives": 3, "clones": 2, "fcnet_hiddens": [16, 8],
                      "fcnet_activation": "tanh", "vf_share_layers": vf_share_layers},
    )
    assert module._mlps is not None and (module._mlps["critic"] is None) == vf_share_layers
    batch = {Columns.OBS: torch.rand(5, 7)}
    stacked = module.forward_train(batch)
    module._mlps = None  # the one-primitive-after-the-other path
    looped = module.forward_train(batch)
    for key in (Columns.ACTION_DIST_INPUTS, Columns.VF_PREDS):
        torch.testing.assert_close(stacked[key], looped[key])
    # Gradients reach each bidder's own parameters through the stacked weights.
    stacked[Columns.VF_PREDS][:, 1].sum().backward()
    assert module.bidders[1].vf.net.mlp[0].weight.grad.abs().sum() > 0
    assert module.bidders[0].vf.net.mlp[0].weight.grad.abs().sum() == 0


def test_cnn_bidders_run_one_after_the_other():
    import gymnasium as gym

    module = SocietyModule(
        observation_space=gym.spaces.Box(0, 1, (16, 16, 1), np.float32),
        action_space=gym.spaces.Box(0, 1, (4,), np.float32),
        model_config={"num_primitives": 2, "clones": 2, "conv_filters": [[4, [4, 4], 2]],
                      "head_fcnet_hiddens": [8], "vf_share_layers": True},
    )
    assert module._mlps is None
    out = module.forward_train({Columns.OBS: torch.rand(3, 16, 16, 1)})
    assert out[Columns.ACTION_DIST_INPUTS].shape == (3, 8) and out[Columns.VF_PREDS].shape == (3, 2)


def test_minibatch_size_counts_each_primitives_samples(algo):
    # 64 samples per primitive per SGD step = 32 auction steps of its 2 clones' bids.
    assert algo.config.minibatch_size == 32 and algo.config.train_batch_size_per_learner == 64
