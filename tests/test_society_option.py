"""A society of societies: a trained society's checkpoint as one primitive of another society.
Its bids are set by hand, so the whole two-level episode is computed here: which inner primitive
acts at each env step, when the option says done, and the outer option's return, discount and
length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, AuctionEnv
from rllib_society.options import INNER_AUCTIONS

LEFT, RIGHT = 0, 1  # Chain's actions; the inner society says done with Left
GAMMA = 0.9
#: The inner society's mean bids (Left, Right) by Chain state; other states bid (0.1, 0.5).
INNER_BIDS = {0: (0.2, 0.7), 1: (0.3, 0.6), 2: (0.8, 0.4)}


class Scripted:
    def __init__(self, action):
        self.action = action

    def act(self, observation):
        return self.action


def _set_mean_bids(module, bids_by_state: dict[int, float], states: int = 7) -> None:
    """Weights under which `module` bids `bids_by_state[s]` on average in state s: the encoder
    passes the one-hot state through (its tanh makes a 1 tanh(1)), the bid head holds
    logit(bid) / tanh(1) per state and leaves the concentration at its start (2)."""
    logits = torch.zeros(2, 16)
    for s in range(states):
        logits[0, s] = float(np.log(bids_by_state[s] / (1 - bids_by_state[s])) / np.tanh(1.0))
    weights = {
        "encoder.actor_encoder.net.mlp.0.weight": torch.eye(16, states),
        "encoder.actor_encoder.net.mlp.0.bias": torch.zeros(16),
        "pi.net.mlp.0.weight": logits,
        "pi.net.mlp.0.bias": torch.zeros(2),
    }
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name in weights:
                parameter.copy_(weights[name])


@pytest.fixture(scope="module")
def inner_society(ray_session, tmp_path_factory):
    """A checkpoint of a 2-clone society on Chain whose mean bids are `INNER_BIDS`."""
    from rllib_society import SocietyPPOConfig

    algo = (SocietyPPOConfig().society(env="envs:Chain-v0", clones=2, value_range=[0, 1])
            .env_runners(num_env_runners=0).rl_module(model_config={"fcnet_hiddens": [16]})).build_algo()
    for primitive in (LEFT, RIGHT):
        _set_mean_bids(algo.get_module(f"p{primitive}"),
                       {s: INNER_BIDS.get(s, (0.1, 0.5))[primitive] for s in range(7)})
    # The checkpoint holds the learner's modules.
    algo.learner_group.set_weights({m: algo.get_module(m).get_state() for m in ("p0", "p1")})
    path = tmp_path_factory.mktemp("inner") / "checkpoint"
    algo.save(str(path))
    algo.stop()
    return path


def outer(options, **config):
    env = AuctionEnv({"env": "envs:Chain-v0", "options": options, "option_done_action": LEFT, "gamma": GAMMA,
                      "clones": 2, "value_range": [0, 1], **config})
    env.reset(seed=0)
    return env


def test_a_society_checkpoint_runs_greedily_as_one_option(inner_society):
    env = outer([str(inner_society), Scripted(RIGHT)])
    assert env.num_primitives == 2

    # Outer auction 1: the society wins. Inside, Right wins s0 and s1, Left (done) wins s2 -> s1.
    _, _, terminated, _, info = env.step(np.array([0.9, 0.9, 0.1, 0.1], np.float32))
    first = info[AUCTION_INFO]
    assert first["winner"] // 2 == 0 and not terminated
    inner = first[INNER_AUCTIONS]
    assert [a["winner"] for a in inner] == [RIGHT, RIGHT, LEFT]
    for auction, state in zip(inner, (0, 1, 2)):
        assert np.allclose(auction["bids"], np.repeat(INNER_BIDS[state], 2), atol=1e-5)  # both clones bid the mean
    assert (first["env_reward"], first["discount"]) == (0.0, pytest.approx(GAMMA ** 3))
    assert env.base_env.unwrapped.state == 1 and env._env_steps == 3

    # Outer auction 2: the flat option walks Right from s1 to the goal: 4 steps, 0.8 on the 4th.
    _, _, terminated, _, info = env.step(np.array([0.1, 0.1, 0.9, 0.9], np.float32))
    second = info[AUCTION_INFO]
    assert terminated and INNER_AUCTIONS not in second
    assert second["env_reward"] == pytest.approx(GAMMA ** 3 * 0.8)
    assert second["discount"] == pytest.approx(GAMMA ** 4)
    summary = second[EPISODE_INFO]
    assert (summary["env_steps"], summary["auction_steps"]) == (7, 2)
    assert summary["env_return"] == pytest.approx(0.8)  # what the env paid (the auctions see it discounted)


def test_a_sampling_society_option_is_won_by_its_highest_sampled_bid(inner_society):
    torch.manual_seed(0)
    env = outer([str(inner_society), Scripted(RIGHT)], option_bids="sampled", option_max_steps=30)
    _, _, _, _, info = env.step(np.array([0.9, 0.9, 0.1, 0.1], np.float32))
    inner = info[AUCTION_INFO][INNER_AUCTIONS]
    # It ran until its done action won, the goal, or the cap; before that Right won every auction.
    assert inner[-1]["winner"] == LEFT or env.base_env.unwrapped.state == 5 or len(inner) == 30
    assert all(a["winner"] == RIGHT for a in inner[:-1])
    for auction in inner:
        assert auction["winner"] == int(np.argmax(auction["bids"])) // 2
    spreads = [a["bids"][0] - a["bids"][1] for a in inner]  # two clones, two samples
    assert any(abs(spread) > 1e-3 for spread in spreads)


@pytest.mark.parametrize(("env_id", "env_config", "message"), [
    ("FrozenLake-v1", {}, r"options\[0\]=.* \(a society trained on 'envs:Chain-v0'\) does not fit the env: its "
                          r"bidders observe states of shape \(7,\), the env's states give \(16,\)"),
    ("envs:Chain-v0", {"num_actions": 3}, r"options\[0\]=.* it has 2 primitives, one per action of its env, "
                                          r"and the env has 3 actions"),
])
def test_a_society_that_does_not_fit_the_env_is_refused_before_ray_starts(inner_society, env_id, env_config, message):
    from experiments.config_files import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, {"env": env_id, "env_config": env_config, "options": [str(inner_society)],
                           "option_done_action": 0, "value_range": [0, 1]})


def test_the_greedy_episode_records_both_levels_and_pictures_them(inner_society, tmp_path):
    from experiments.evaluation import greedy_episode
    from experiments.reporting import plot_episode_strip
    from rllib_society import load_modules

    # The outer society reuses the inner bidders: its p0 (the society option) bids as the inner
    # Right does, its p1 (the flat Right option) as the inner Left, so the society option wins
    # every state: s0 -> s1 -> s2, done -> s1; then s1 -> s2, done -> s1, ... until the 20-step cut.
    inner = load_modules(inner_society)
    env = outer([str(inner_society), Scripted(RIGHT)])
    env.base_env.render = lambda: np.zeros((4, 4, 3))  # Chain renders nothing
    frames: list = []
    summary, picks = greedy_episode(env, {"p0": inner["p1"], "p1": inner["p0"]}, seed=0, frames=frames)
    auctions = frames[:-1]
    assert [a["winner"] for a in auctions] == [0] * len(auctions)
    assert [i["winner"] for i in auctions[0]["inner"]] == [RIGHT, RIGHT, LEFT]
    assert all([i["winner"] for i in a["inner"]] == [RIGHT, LEFT] for a in auctions[1:-1])
    assert summary["env_steps"] == 20 and not summary["timeout"]  # Chain's own limit cut it
    plot_episode_strip(frames, ["p0 society", "p1 right"], tmp_path / "episode.png")
    assert (tmp_path / "episode.png").stat().st_size > 0
