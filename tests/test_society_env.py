"""The multi-agent `SocietyEnv` under stock RLlib: RLlib's own env checker passes, and every auction
of every sampled episode reaches the learner exactly once with its exact utility.

The oracle is a naive per-step loop written here, from the auction records the env put into the
agents' infos (bids, active bidders, reward, discount); it never calls `episode_utilities`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from experiments.algo_config import society_ppo_config
from rllib_society.auction_env import AUCTION_INFO
from experiments.config_files import load_config
from rllib_society.society_env import SocietyEnv, policy_mapping_fn

FORWARD, LEFT, DONE = 2, 0, 6


class Constant:
    """An option that repeats one MiniGrid action (until done, the cap or the episode's end)."""

    def __init__(self, action):
        self.action = action

    def act(self, observation):
        return self.action


OPTIONS = {"env": "TwoRooms-Pretrain-v0", "options": [Constant(FORWARD), Constant(LEFT), Constant(DONE)],
           "option_done_action": DONE, "option_max_steps": 3, "gamma": 0.9}


@pytest.mark.parametrize("config", [
    {"env": "Chain-v0"},
    {"env": "MentalRotation-v0", "value_range": [0, 1]},
    OPTIONS,
], ids=["chain", "mental_rotation", "tworooms_options"])
def test_rllibs_own_checker_passes(config):
    check_multiagent_environments(SocietyEnv({**config, "clones": 2}))


def test_agent_ids_map_to_their_primitives_module():
    env = SocietyEnv({"env": "Chain-v0", "env_config": {"num_actions": 3}, "clones": 2})
    assert len(env.possible_agents) == 3 * 2 * 2
    assert {policy_mapping_fn(a) for a in env.possible_agents} == {"p0", "p1", "p2"}
    assert policy_mapping_fn("p2_c1_odd") == "p2"


# ------------------------------------------------------------------------------ exact credit


def oracle(records: list[dict], auction: str, value_range=(0.0, 1.0), clones: int = 1,
           scored_values: dict | None = None) -> dict[tuple[int, int], float]:
    """{(step, bidder): utility} of every active bidder at every auction of one episode, with the
    env reward R mapped to bid units by hand: (R - (1 - discount) * lo) / (hi - lo), and
    (R - lo) / (hi - lo) at the episode's last auction. An exploration offer (the record's
    ``offer`` >= 0) goes to one bidder at ``offer_price``: it buys if its bid is at least the
    price (wins, pays the price), else the auction runs without it; a scored offer (``scored``)
    always goes through, and the bidder and the other active clones of its primitive, bidding b,
    earn -(b - v)^2 / 2, v the step's reward plus discounted lookahead. The
    seller of each state is paid that state's usual price, over all active bids (over the
    record's ``lookahead_bids`` where it holds them: ``lookahead: mean``). A count bonus (the
    record's ``bonus``, env units; test_exploration checks it against naive counts) is part of
    the env reward. `scored_values`, when given, gets {(step, bidder): v} of the scored bidders."""
    lo, hi = value_range

    def clear(record, without=-1):
        active = [b for b in range(len(record["bids"])) if record["active"][b] and b != without]
        winner = active[0]
        for b in active:
            if record["bids"][b] > record["bids"][winner]:
                winner = b
        price = None  # the highest other bid (negative ones too: bids on the real line); 0 for a lone bidder
        for b in active:
            if b != winner and (price is None or record["bids"][b] > price):
                price = record["bids"][b]
        return active, winner, 0.0 if price is None else price

    def settle(record):
        """(winner, what it pays, whether it is a scored offer)."""
        _, winner, price = clear(record)
        offer = record.get("offer", -1)
        if offer >= 0 and record.get("scored"):
            return offer, 0.0, True
        if offer >= 0 and record["bids"][offer] >= record["offer_price"]:
            return offer, record["offer_price"], False
        if offer >= 0:
            _, winner, price = clear(record, without=offer)
        return winner, (record["bids"][winner] if auction == "bb" else price), False

    utilities = {}
    for t, record in enumerate(records):
        active, _, _ = clear(record)
        winner, paid, scored = settle(record)
        next_bid = next_price = 0.0
        if t + 1 < len(records):  # with lookahead: mean, the next state is priced by the mean bids
            priced = {**records[t + 1], "bids": records[t + 1].get("lookahead_bids", records[t + 1]["bids"])}
            _, next_winner, next_price = clear(priced)
            next_bid = priced["bids"][next_winner]
        shift = lo if record["last"] else (1 - record["discount"]) * lo
        reward = (record["env_reward"] + record.get("bonus", 0.0) - shift) / (hi - lo)
        if auction == "env":
            won = reward
        else:  # ccv: the seller gets the next usual second price; v, bb: the next usual winning bid
            value = reward + record["discount"] * (next_price if auction == "ccv" else next_bid)
            won = value - paid
        for b in active:
            utilities[(t, b)] = won if b == winner else 0.0
            if scored and auction != "env" and b // clones == winner // clones:
                utilities[(t, b)] = -(record["bids"][b] - value) ** 2 / 2
                if scored_values is not None:
                    scored_values[(t, b)] = value
    return utilities


def auction_records(chunks) -> dict[str, dict[int, dict]]:
    """{episode id: {step: auction record}} from the agents' infos (with the lookback: an agent
    whose chunk holds no step of its own is left out of it, and its info shows up in the
    lookback of its next chunk)."""
    records = defaultdict(dict)
    for chunk in chunks:
        for agent_episode in chunk.agent_episodes.values():
            for info in agent_episode.infos.data:
                if AUCTION_INFO in info:
                    records[chunk.id_][info[AUCTION_INFO]["step"]] = info[AUCTION_INFO]
    return records


def expected_samples(chunks, auction: str, clones: int, later=(), value_range=(0.0, 1.0)) -> dict[str, list[tuple[float, float]]]:
    """Per module, the (bid, utility) of every auction whose utility the sampled chunks decide:
    every auction followed by a sampled one, and every episode's last. `later` chunks only fill
    in records."""
    known = auction_records([*chunks, *later])
    samples = defaultdict(list)
    for episode_id, sampled in auction_records(chunks).items():
        ordered = [known[episode_id][t] for t in range(len(known[episode_id]))]  # every step, in order
        utilities = oracle(ordered, auction, value_range, clones)
        for (t, b), utility in utilities.items():
            if t + 1 in sampled or (t in sampled and ordered[t]["last"]):
                samples[f"p{b // clones}"].append((float(np.float32(ordered[t]["bids"][b])), utility))
    return samples


def learner_samples(learner, samples_per_call) -> dict[str, list[tuple[float, float]]]:
    """Per module, (bid, value target) of every row PPO's loss sees, from the learner's own
    connector pipeline, run once per `sample()` call as PPO's training step does."""
    samples = defaultdict(list)
    for chunks in samples_per_call:
        batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=chunks,
                                           shared_data={}, metrics=learner.metrics)
        for module_id, columns in batch.items():
            mask = np.asarray(columns[Columns.LOSS_MASK], dtype=bool)
            bids = np.asarray(columns[Columns.ACTIONS])[mask, 0]
            targets = np.asarray(columns["value_targets"])[mask]
            np.testing.assert_allclose(np.asarray(columns[Columns.REWARDS])[mask], targets, atol=1e-6)
            samples[module_id] += list(zip(bids.tolist(), targets.tolist()))
    return samples


def assert_each_auction_once_with_its_utility(learner, samples_per_call, auction, clones, later=(),
                                              value_range=(0.0, 1.0)):
    expected = expected_samples([c for chunks in samples_per_call for c in chunks], auction, clones, later,
                                value_range)
    got = learner_samples(learner, samples_per_call)
    assert set(got) <= set(expected)
    total = 0
    for module_id, pairs in expected.items():
        want, have = np.array(sorted(pairs)), np.array(sorted(got.get(module_id, [])))
        assert want.shape == have.shape, f"{module_id}: {len(have)} samples reached the learner, {len(want)} expected"
        np.testing.assert_array_equal(have[:, 0], want[:, 0])  # the same bids, each once
        np.testing.assert_allclose(have[:, 1], want[:, 1], atol=1e-5)
        total += len(want)
    return total


CASES = {
    "ccv": {"auction": "ccv"},
    "v_value_range": {"auction": "v", "value_range": [-0.5, 1.5]},
    "bb_dropout": {"auction": "bb", "clones": 3, "dropout": 0.4},
    "env_dropout_by_primitive": {"auction": "env", "dropout": 0.5, "dropout_unit": "primitive"},
    # Exploration offers in half the auctions, bought and declined (`rllib_society.exploration`).
    "ccv_offers": {"auction": "ccv", "exploration": {"kind": "offers", "rate": 0.5}},
    "bb_offers_dropout": {"auction": "bb", "clones": 3, "dropout": 0.4, "exploration": {"kind": "offers", "rate": 0.5}},
    "v_scored_dropout": {"auction": "v", "clones": 3, "dropout": 0.3, "exploration": {"kind": "scored", "rate": 0.5}},
    "ccv_scored_bonus": {"auction": "ccv", "exploration": {"kind": "scored", "rate": 0.5, "bonus": 0.3}},
}


def stock_config(fragment: int | str, **overrides):
    config = load_config("configs/chain.yaml", {"train_batch_size_per_learner": 64, "minibatch_size": 64,
                                                "num_envs_per_env_runner": 3, "sampler": "stock", **overrides},
                         [*([] if "value_range" in overrides else ["value_range=null"]),
                          *([] if "exploration" in overrides else ["exploration=null"])])
    # (None overrides nothing; the stock path bids in a fixed range)
    algo_config = society_ppo_config(config)
    if fragment == "complete":
        return config, algo_config.env_runners(batch_mode="complete_episodes")
    return config, algo_config.env_runners(rollout_fragment_length=fragment)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fragment", [1, 2, 3, 7, "complete"])
def test_stock_runner_and_learner_train_every_auction_once_on_its_exact_utility(fragment, case):
    config, algo_config = stock_config(fragment, **CASES[case])
    runner = MultiAgentEnvRunner(config=algo_config)
    learner = algo_config.build_learner(spaces=runner.get_spaces())  # built, with PPO's pieces
    samples_per_call = [runner.sample(random_actions=False) for _ in range(8)]
    if fragment != "complete":
        assert any(not chunk.is_done for chunks in samples_per_call for chunk in chunks)
    checked = assert_each_auction_once_with_its_utility(learner, samples_per_call, config.auction, config.clones,
                                                        later=runner.sample(random_actions=False),
                                                        value_range=config.value_range or (0.0, 1.0))
    assert checked >= 40
    runner.stop()


def test_two_remote_stock_env_runners_train_every_auction_once(ray_session):
    config, algo_config = stock_config(10, num_env_runners=2, num_cpus_per_env_runner=0.5, dropout=0.3,
                                       train_batch_size_per_learner=60, minibatch_size=60,
                                       value_range=[-1.0, 2.0])
    algo = algo_config.build_algo()
    try:
        learner = algo.learner_group._learner
        calls = [algo.env_runner_group.foreach_env_runner(lambda r: r.sample(), local_env_runner=False)
                 for _ in range(5)]
        for runner in range(2):
            checked = assert_each_auction_once_with_its_utility(
                learner, [call[runner] for call in calls[:-1]], config.auction, config.clones, later=calls[-1][runner],
                value_range=config.value_range)
            assert checked >= 40
    finally:
        algo.stop()
