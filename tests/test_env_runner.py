"""The fast path: `SocietyEnvRunner` and `SocietyPPOLearner`'s batch. Every auction of every sampled
episode reaches the learner exactly once with its exact utility (the naive oracle of
`test_society_env`), at any fragment length and batch mode, the rows the learner trains are
those handed over (by their identities: episode, auction step, bidder), and the stock env pays
the same utilities for the same bids."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from experiments.algo_config import society_ppo_config
from rllib_society.chunk_connector import SCORED_VALUES
from rllib_society.env_runner import AuctionChunk, SocietyEnvRunner
from rllib_society.rows import compare_rows
from rllib_society.society_env import SocietyEnv
from rllib_society.society_module import bid_distribution_of
from test_society_env import CASES, OPTIONS, oracle

FRAGMENTS = [1, 2, 3, 7, "complete"]


def fast(fragment, **overrides):
    from experiments.config_files import load_config

    options = overrides.pop("options_env", None)
    config = load_config("configs/chain.yaml", {"train_batch_size_per_learner": 64, "minibatch_size": 64,
                                                "num_envs_per_env_runner": 3, **overrides},
                         [] if "exploration" in overrides else ["exploration=null"])  # None overrides nothing
    algo_config = society_ppo_config(config)
    if options:
        algo_config.society(**options)
    if fragment == "complete":
        algo_config.env_runners(batch_mode="complete_episodes")
    else:
        algo_config.env_runners(rollout_fragment_length=fragment)
    runner = SocietyEnvRunner(config=algo_config)
    return runner, algo_config.build_learner(spaces=runner.get_spaces())


def expected_samples(chunks: list[AuctionChunk], pending: dict[str, list], auction: str, clones: int,
                     value_range=(0.0, 1.0)):
    """Per module, the (bid, utility) of every auction the chunks hold, from the oracle over all
    its episode's auctions: those in chunks and those still `pending` in the runner."""
    records, pricing = defaultdict(list), {}
    for chunk in chunks:
        records[chunk.id_] += chunk.records
        if chunk.pricing is not None:  # truncation: bootstrap; the cut state's price, not a row
            pricing[chunk.id_] = [chunk.pricing]
    samples = defaultdict(list)
    for episode_id, handed in records.items():
        ordered = handed + pending.get(episode_id, []) + pricing.get(episode_id, [])
        assert [r["step"] for r in ordered] == list(range(len(ordered)))  # no auction twice or lost
        for (t, b), utility in oracle(ordered, auction, value_range, clones).items():
            if t < len(handed):
                samples[f"p{b // clones}"].append((float(np.float32(ordered[t]["bids"][b])), utility))
    return samples


def learner_samples(learner, samples_per_call):
    got = defaultdict(list)
    for chunks in samples_per_call:
        batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=chunks,
                                           shared_data={}, metrics=learner.metrics)
        for module_id, columns in batch.items():
            mask = columns[Columns.LOSS_MASK].numpy()
            got[module_id] += list(zip(columns[Columns.ACTIONS].numpy()[mask, 0].tolist(),
                                       columns["value_targets"].numpy()[mask].tolist()))
    return got


FAST_CASES = {
    **CASES,
    "options": {"options_env": OPTIONS, "value_range": [-0.25, 0.5], "conv_filters": [[4, [3, 3], 2]],
                "vf_share_layers": True},
    # Chain cut at 6 steps (gym.make's max_episode_steps), the cuts priced (the stock path refuses it).
    "ccv_bootstrap": {"auction": "ccv", "truncation": "bootstrap", "value_range": [-0.5, 1.0],
                      "env_config": {"max_episode_steps": 6}},
    "ccv_bootstrap_offers": {"auction": "ccv", "truncation": "bootstrap", "value_range": [-0.5, 1.0],
                             "env_config": {"max_episode_steps": 6}, "exploration": {"kind": "offers", "rate": 0.5}},
    "ccv_bootstrap_scored": {"auction": "ccv", "truncation": "bootstrap", "value_range": [-0.5, 1.0],
                             "env_config": {"max_episode_steps": 6}, "exploration": {"kind": "scored", "rate": 0.5}},
    # Bids on the real line (negative ones too), auctioned in env units; offers priced by the logistic.
    "ccv_adaptive_offers": {"auction": "ccv", "value_range": "adaptive", "exploration": {"kind": "offers", "rate": 0.5}},
    "bb_adaptive_scored_bootstrap": {"auction": "bb", "value_range": "adaptive", "truncation": "bootstrap",
                                     "env_config": {"max_episode_steps": 6}, "exploration": {"kind": "scored", "rate": 0.5}},
    # States sold for the clearing price of the mean bids (the oracle reads them from the records;
    # test_the_mean_lookahead_prices_with_the_modules_mean_bids checks they are the modules').
    "ccv_mean_lookahead_scored": {"auction": "ccv", "lookahead": "mean", "value_range": [0.0, 1.0],
                                  "exploration": {"kind": "scored", "rate": 0.5}},
    # The count bonus inside the rewards (test_exploration checks it against naive counts).
    "ccv_scored_bonus": {"auction": "ccv", "value_range": [0.0, 1.0],
                         "exploration": {"kind": "scored", "rate": 0.5, "bonus": 0.3}},
    "v_mean_lookahead_adaptive_bootstrap": {"auction": "v", "lookahead": "mean", "value_range": "adaptive",
                                            "truncation": "bootstrap", "env_config": {"max_episode_steps": 6}},
}


@pytest.mark.parametrize("case", FAST_CASES)
@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_every_auction_reaches_the_learner_once_with_its_exact_utility(fragment, case):
    overrides = dict(FAST_CASES[case])
    runner, learner = fast(fragment, **overrides)
    env = runner.auction_envs[0]
    samples_per_call = [runner.sample(random_actions=False) for _ in range(8)]
    chunks = [c for call in samples_per_call for c in call]
    pending = {open_.id_: open_.rows["records"] for open_ in runner._open}
    expected = expected_samples(chunks, pending, env.config["auction"], env.clones, env.value_range)
    got = learner_samples(learner, samples_per_call)
    if case == "ccv_bootstrap":  # cuts happened, and were priced
        assert any(c.pricing is not None for c in chunks)
    # Row identities: the rows the learner trained (in some minibatch) are the rows handed over.
    sampled, trained = [], []
    for call in samples_per_call:
        learner.update(episodes=call, num_epochs=2, minibatch_size=8, shuffle_batch_per_epoch=True)
        sampled += [entry for chunk in call for entry in chunk.row_entries()]
        trained += learner.trained_rows
    rows = compare_rows(sampled, trained)
    assert rows == {"rows": sum(map(len, expected.values())), "duplicated": 0, "lost": 0, "unsampled": 0}
    checked = 0
    for module_id, pairs in expected.items():
        want, have = np.array(sorted(pairs)), np.array(sorted(got[module_id]))
        assert want.shape == have.shape, f"{module_id}: {len(have)} samples reached the learner, {len(want)} expected"
        np.testing.assert_array_equal(have[:, 0], want[:, 0])
        np.testing.assert_allclose(have[:, 1], want[:, 1], atol=1e-5)
        checked += len(want)
    assert checked >= 40
    # A running episode's last auction waits in the runner: the next chunk of its episode starts with it.
    stepped = sum(c.env_steps() for c in chunks)
    if fragment == "complete":
        assert all(c.is_done for c in chunks)
    else:
        priced = sum(c.pricing is not None for c in chunks)  # pricing auctions: stepped, not trained
        assert sum(len(c) for c in chunks) + sum(map(len, pending.values())) + priced == stepped
        if not (fragment == 7 and "bootstrap" in case):  # episodes cut at 6 auctions may fit a fragment of 7
            assert any(not c.is_done for c in chunks)
    runner.stop()


@pytest.mark.parametrize("value_range", [[0.0, 1.0], "adaptive"])
def test_the_mean_lookahead_prices_with_the_modules_mean_bids(value_range):
    runner, _ = fast(3, lookahead="mean", value_range=value_range)
    chunks = runner.sample(random_actions=False)
    scale, clones = runner.module.value_scale(), runner.auction_envs[0].clones
    for chunk in chunks:
        inputs = torch.as_tensor(chunk.bid_inputs).repeat_interleave(clones, dim=1)
        means = bid_distribution_of(scale).from_logits(inputs).to_deterministic().loc[..., 0].numpy()
        means = means if scale is None else scale[0] + scale[1] * means  # auctioned in env units
        recorded = np.stack([record["lookahead_bids"] for record in chunk.records])
        np.testing.assert_allclose(recorded, means, atol=1e-5)
        assert not np.allclose(recorded, np.stack([record["bids"] for record in chunk.records]))  # sampled differ
    runner.stop()


def scored_batch(case: str, moments: list[float] | None = None, **exploration):
    """A fast runner's two samples of `case` (its exploration updated with `exploration`), the
    learner's batch of them (advantages not standardized; bids on the real line: with the
    learner's value statistics set to `moments`), and from the oracle each active row's utility
    and each scored row's step value v, by (episode, auction step, bidder)."""
    overrides = dict(FAST_CASES[case])
    overrides["exploration"] = {**overrides["exploration"], **exploration}
    runner, learner = fast(3, standardize_advantages=False, **overrides)
    env = runner.auction_envs[0]
    chunks = [c for c in runner.sample(random_actions=False) + runner.sample(random_actions=False) if len(c)]
    pending = {open_.id_: open_.rows["records"] for open_ in runner._open}
    episodes = defaultdict(list)
    for chunk in chunks:
        episodes[chunk.id_] += chunk.records
    utilities, values = {}, {}
    for episode_id, handed in episodes.items():
        ordered = handed + pending.get(episode_id, [])
        scored = {}
        for (t, b), utility in oracle(ordered, env.config["auction"], env.value_range, env.clones, scored).items():
            utilities[(episode_id, ordered[t]["step"], b)] = utility
        values.update({(episode_id, ordered[t]["step"], b): v for (t, b), v in scored.items()})
    if moments is not None and learner.module.value_scale() is not None:
        learner.module.set_value_moments(torch.tensor(moments, dtype=torch.float64))
    batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=chunks, shared_data={},
                                       metrics=learner.metrics)
    rows = [(chunk.id_, record["step"]) for chunk in chunks for record in chunk.records]
    keys = {module_id: [(*rows[row // env.clones], k * env.clones + row % env.clones) if active else None
                        for row, active in enumerate(batch[module_id][Columns.LOSS_MASK].numpy())]
            for k, module_id in enumerate(learner.module.module_ids)}  # each row's bidder, None if it sat out
    critic = learner.module.state_values(torch.as_tensor(np.concatenate([c.obs for c in chunks]))).detach().numpy()
    return runner, learner, batch, keys, utilities, values, critic


@pytest.mark.parametrize("case, baseline", [("ccv_scored_bonus", "expected"), ("bb_adaptive_scored_bootstrap", "expected"),
                                            ("ccv_mean_lookahead_scored", "expected"), ("ccv_scored_bonus", "state")])
def test_a_scored_rows_baseline_is_its_expected_square_loss(case, baseline):
    """With ``exploration.baseline: expected`` and without standardization, a scored row's
    advantage is its utility -(b - v)^2 / 2 less that
    utility's mean over the bid distribution it was sampled from, -((m - v)^2 + s^2) / 2 (torch's
    own mean and variance of that distribution; v from the oracle); every other row's is its
    utility less the critic's value, as a scored row's is with ``baseline: state`` (the default).
    Bids on the real line: in units of the value scale."""
    runner, learner, batch, keys, utilities, values, critic = scored_batch(case, baseline=baseline)
    scale = learner.module.value_scale()
    mu, sigma = (0.0, 1.0) if scale is None else scale
    checked = 0
    for k, module_id in enumerate(learner.module.module_ids):
        columns = batch[module_id]
        distribution = bid_distribution_of(scale).from_logits(columns[Columns.ACTION_DIST_INPUTS])._dist
        means = mu + sigma * distribution.mean[:, 0].double().numpy()
        variances = sigma ** 2 * distribution.variance[:, 0].double().numpy()
        advantages = columns["advantages"].numpy()
        for row, key in enumerate(keys[module_id]):
            if key is None:
                continue
            checked += key in values
            if key in values and baseline == "expected":
                want = (utilities[key] + ((means[row] - values[key]) ** 2 + variances[row]) / 2) / sigma
            else:
                want = utilities[key] / sigma - critic[k, row // runner.auction_envs[0].clones]
            assert advantages[row] == pytest.approx(want, abs=1e-4), (module_id, key)
        assert SCORED_VALUES not in columns
    assert checked >= 4
    runner.stop()


@pytest.mark.parametrize("case", ["ccv_scored_bonus", "bb_adaptive_scored_bootstrap", "ccv_mean_lookahead_scored"])
def test_the_mean_fit_gets_each_scored_rows_value(case):
    """With ``exploration.scored_loss: mean`` every module's batch holds each scored row's step
    value v from the oracle (in units of the value scale on the real line: (v - mu) / sigma) and
    NaN on every other active row."""
    runner, learner, batch, keys, utilities, values, critic = scored_batch(case, [0.5, 4.25, 1.0], scored_loss="mean")
    scale = learner.module.value_scale()
    assert scale is None or scale == pytest.approx((0.5, 2.0))
    mu, sigma = (0.0, 1.0) if scale is None else scale
    checked = 0
    for k, module_id in enumerate(learner.module.module_ids):
        fitted = batch[module_id][SCORED_VALUES].numpy()
        for row, key in enumerate(keys[module_id]):
            if key is None:
                continue
            if key in values:
                checked += 1
                assert fitted[row] == pytest.approx((values[key] - mu) / sigma, abs=1e-4), (module_id, key)
            else:
                assert np.isnan(fitted[row]), (module_id, key)
    assert checked >= 4
    runner.stop()


def test_an_update_that_fails_counts_nothing(monkeypatch):
    """The learner counts rows and steps once it has trained: an update that raises in its loss
    leaves no trained rows and no step counts, and the next update counts only its own rows."""
    from ray.rllib.core import ALL_MODULES
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_TRAINED_LIFETIME, NUM_MODULE_STEPS_TRAINED_LIFETIME

    runner, learner = fast(3)
    failing, working = runner.sample(random_actions=False), runner.sample(random_actions=False)
    compute_losses = type(learner).compute_losses
    calls = {"n": 0}

    def fail_on_the_second_minibatch(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("loss failed")
        return compute_losses(self, **kwargs)

    monkeypatch.setattr(type(learner), "compute_losses", fail_on_the_second_minibatch)
    with pytest.raises(RuntimeError, match="loss failed"):
        learner.update(episodes=failing, num_epochs=2, minibatch_size=8)
    assert calls["n"] == 2 and learner.trained_rows == []
    metrics = learner.update(episodes=working, num_epochs=2, minibatch_size=8)
    sampled = [entry for chunk in working for entry in chunk.row_entries()]
    rows = sum(entry.num_rows() for entry in sampled)
    assert compare_rows(sampled, learner.trained_rows) == {"rows": rows, "duplicated": 0, "lost": 0, "unsampled": 0}
    assert metrics[ALL_MODULES][NUM_ENV_STEPS_TRAINED_LIFETIME] == sum(c.env_steps() for c in working)
    # Each module trained its rows in 2 epochs; the failed update's first minibatch is not counted.
    assert metrics[ALL_MODULES][NUM_MODULE_STEPS_TRAINED_LIFETIME] == 2 * rows
    runner.stop()


def test_the_stock_env_pays_the_same_utilities_for_the_same_bids():
    runner, _ = fast("complete", auction="v", value_range=[-2.0, 0.5], gamma=0.9, clones=3)
    chunks = [c for _ in range(3) for c in runner.sample()]
    assert chunks and all(c.is_done for c in chunks)
    env = SocietyEnv(runner.auction_envs[0].config)
    for chunk in chunks:
        observations, _ = env.reset()
        paid = np.zeros_like(chunk.utilities)
        for t, record in enumerate(chunk.records):
            observations, rewards, *_ = env.step({a: np.array([record["bids"][env.ids[t % 2].index(a)]])
                                                  for a in observations})
            for agent, reward in rewards.items():
                parity = 0 if agent.endswith("even") else 1
                step = t if record["last"] and parity == t % 2 else t - 1
                paid[step, env.ids[parity].index(agent)] = reward
        np.testing.assert_allclose(paid, chunk.utilities, atol=1e-6)


def test_two_remote_env_runners_hand_over_every_auction_once(ray_session):
    from experiments.config_files import load_config

    config = load_config("configs/chain.yaml", {"num_env_runners": 2, "num_cpus_per_env_runner": 0.5,
                                                "num_envs_per_env_runner": 2, "rollout_fragment_length": 5,
                                                "dropout": 0.3, "value_range": [-1.0, 2.0]})
    algo = society_ppo_config(config).build_algo()
    try:
        learner = algo.learner_group._learner
        calls = [algo.env_runner_group.foreach_env_runner(
            lambda r: (r.sample(), {o.id_: list(o.rows["records"]) for o in r._open}), local_env_runner=False)
            for _ in range(4)]
        for runner in range(2):  # each runner's episodes, over its 4 calls
            samples_per_call = [call[runner][0] for call in calls]
            pending = calls[-1][runner][1]
            expected = expected_samples([c for chunks in samples_per_call for c in chunks], pending,
                                        config.auction, config.clones, config.value_range)
            got = learner_samples(learner, samples_per_call)
            assert expected
            for module_id, pairs in expected.items():
                want, have = np.array(sorted(pairs)), np.array(sorted(got[module_id]))
                np.testing.assert_array_equal(have[:, 0], want[:, 0])
                np.testing.assert_allclose(have[:, 1], want[:, 1], atol=1e-5)
    finally:
        algo.stop()


def test_a_chunk_slices_into_shards_that_add_up_to_it():
    # RLlib's learner group shards episodes by slicing them (num_learners > 1).
    runner, _ = fast("complete", auction="ccv")
    chunk = max((c for _ in range(2) for c in runner.sample()), key=len)
    cut = len(chunk) // 2
    head, tail = chunk[:cut], chunk.slice(slice(cut, None), len_lookback_buffer=1)
    assert (len(head), len(tail)) == (cut, len(chunk) - cut)
    np.testing.assert_array_equal(np.concatenate([head.utilities, tail.utilities]), chunk.utilities)
    np.testing.assert_array_equal(np.concatenate([head.bids, tail.bids]), chunk.bids)
    assert head.records + tail.records == chunk.records and head.id_ == tail.id_ == chunk.id_
    assert (head.is_done, tail.is_done) == (False, chunk.is_done)  # the end stays with the last piece
    assert head.env_steps() + tail.env_steps() == chunk.env_steps()
    runner.stop()
