"""Options as primitives: one auction step runs a frozen policy for several env steps, with the
spec's reward (discounted return of its steps) and discount (gamma ** length), which the auction
utilities then use exactly as `episode_utilities` defines."""

from __future__ import annotations

import numpy as np
import pytest

from envs.two_rooms import HORIZON
from rllib_society.auction import episode_utilities
from rllib_society.auction_env import AUCTION_INFO, EPISODE_INFO, AuctionEnv

LEFT, RIGHT, FORWARD, TOGGLE, DONE = 0, 1, 2, 5, 6
GAMMA = 0.9


class Scripted:
    """A policy that plays a fixed list of actions (and repeats the last)."""

    def __init__(self, actions):
        self.actions, self.t = list(actions), 0

    def act(self, observation):
        action = self.actions[min(self.t, len(self.actions) - 1)]
        self.t += 1
        return action


def society(task: str, options, **config):
    env = AuctionEnv({
        "env": f"TwoRooms-{task}-v0", "env_config": {"agent_pos": (3, 2), "agent_dir": 0},
        "options": options, "option_done_action": DONE, "gamma": GAMMA, "clones": 2, "value_range": [0, 1],
        **config,
    })
    env.reset(seed=0)
    return env


def bid(env, bids_per_primitive):
    """One auction with each primitive's clones bidding the given bid and 0.01 less."""
    actions = np.array([b - 0.01 * c for b in bids_per_primitive for c in range(2)], np.float32)
    observation, reward, terminated, truncated, info = env.step(actions)
    return reward, terminated, truncated, info[AUCTION_INFO]


def test_an_option_is_one_auction_step_with_discounted_reward_and_discount_gamma_to_the_length():
    red = Scripted([TOGGLE, FORWARD, FORWARD, DONE])          # ends in room 2: 4 env steps
    green = Scripted([FORWARD, FORWARD, LEFT, FORWARD, DONE])  # then done on green: 5 steps
    env = society("Pretrain", [red, green, Scripted([DONE])])
    assert env.num_primitives == 3 and env.num_bidders == 6

    _, terminated, _, first = bid(env, [0.7, 0.5, 0.2])
    assert first["winner"] == 0 and not terminated
    assert first["reward"] == 0.0 and first["discount"] == pytest.approx(GAMMA ** 4)
    assert env._env_steps == 4 and tuple(env.base_env.unwrapped.agent_pos) == (5, 2)

    _, terminated, _, second = bid(env, [0.3, 0.8, 0.2])
    assert second["winner"] == 2 and terminated  # p1_c0 is agent index 2
    success = 1 - 0.9 * 9 / HORIZON  # the env's reward at its 9th step, the option's 5th
    assert second["reward"] == pytest.approx(GAMMA ** 4 * success)
    assert second["discount"] == pytest.approx(GAMMA ** 5)
    summary = second[EPISODE_INFO]
    assert (summary["env_steps"], summary["auction_steps"]) == (9, 2)
    assert summary["env_return"] == pytest.approx(success)  # what the env paid, undiscounted

    # The winners' utilities (ccv), by hand: prices are the runner-up bids (the twins' 0.69, 0.79).
    bids = np.array([[0.7, 0.69, 0.5, 0.49, 0.2, 0.19], [0.3, 0.29, 0.8, 0.79, 0.2, 0.19]])
    utilities = episode_utilities(bids, [first["reward"], second["reward"]],
                                  [first["discount"], second["discount"]], "ccv")
    assert utilities[0, 0] == pytest.approx(0.0 + GAMMA ** 4 * 0.79 - 0.69)
    assert utilities[1, 2] == pytest.approx(GAMMA ** 4 * success + 0.0 - 0.79)


def test_an_option_that_never_says_done_runs_until_the_time_limit():
    spin = Scripted([LEFT])
    env = society("Pretrain", [spin, Scripted([DONE])])
    _, terminated, truncated, record = bid(env, [0.9, 0.1])
    assert truncated and not terminated
    assert env._env_steps == HORIZON and record["discount"] == pytest.approx(GAMMA ** HORIZON)


def test_option_max_steps_caps_one_option():
    env = society("Pretrain", [Scripted([LEFT]), Scripted([DONE])], option_max_steps=7)
    _, terminated, truncated, record = bid(env, [0.9, 0.1])
    assert not (terminated or truncated) and env._env_steps == 7
    assert record["discount"] == pytest.approx(GAMMA ** 7)


def test_an_option_ends_at_any_of_its_done_actions_and_reports_what_the_env_paid():
    # Taxi: drive west twice, then drop off (5) or pick up (4); either ends the option, and Taxi
    # receives it (here -10, no passenger to pick up or drop off).
    SOUTH, WEST, PICKUP, DROPOFF = 0, 3, 4, 5
    env = AuctionEnv({"env": "Taxi-v3", "options": [Scripted([WEST, WEST, DROPOFF, SOUTH]),
                                                     Scripted([SOUTH, PICKUP, SOUTH])],
                      "option_done_action": [PICKUP, DROPOFF], "gamma": GAMMA, "clones": 2, "value_range": [-50, 20]})
    env.reset(seed=0)
    _, _, _, record = bid(env, [0.9, 0.1])
    assert env._env_steps == 3
    assert record["env_reward"] == pytest.approx(-1 - GAMMA - 10 * GAMMA ** 2)  # the option's discounted return
    assert record["discount"] == pytest.approx(GAMMA ** 3)
    _, _, _, record = bid(env, [0.1, 0.9])
    assert env._env_steps == 5
    assert env.episode_summary()["env_return"] == pytest.approx(-1 - 1 - 10 - 1 - 10)


def test_option_done_action_is_an_action_or_a_list_of_them():
    from rllib_society.settings import check_society_settings
    from rllib_society.auction_env import DEFAULT_SOCIETY_CONFIG

    for done in (6, [4, 5]):
        check_society_settings({**DEFAULT_SOCIETY_CONFIG, "env": "Taxi-v3", "option_done_action": done})
    for done in (-1, [], [4, "5"], True, 2.0):
        with pytest.raises(ValueError, match=r"option_done_action=.* is not allowed; option_done_action must be None, "
                                             r"an integer >= 0 \(an env action\) or a non-empty list of them"):
            check_society_settings({**DEFAULT_SOCIETY_CONFIG, "env": "Taxi-v3", "option_done_action": done})


def test_a_policy_option_sees_discrete_states_one_hot_as_in_training():
    import gymnasium as gym
    from ray.rllib.core.columns import Columns

    from rllib_society.observations import bidder_observation
    from rllib_society.options import ModulePolicy

    class FirstSix:  # a module whose logits are its first six inputs: it picks the hot one
        def forward_inference(self, batch):
            return {Columns.ACTION_DIST_INPUTS: batch[Columns.OBS][:, :6]}

    states = gym.spaces.Discrete(500)
    policy = ModulePolicy(FirstSix(), lambda state: bidder_observation(state, states))
    assert [policy.act(state) for state in range(6)] == list(range(6))


def test_options_need_a_done_action_and_existing_checkpoints(tmp_path):
    from experiments.config_files import load_config

    with pytest.raises(ValueError, match="options"):
        load_config(None, {"env": "TwoRooms-Pretrain-v0", "options": [str(tmp_path / "nope")],
                           "option_done_action": DONE})
    with pytest.raises(ValueError, match="option_done_action"):
        load_config(None, {"env": "TwoRooms-Pretrain-v0", "options": [str(tmp_path)]})


def test_a_pretrained_checkpoint_loads_as_an_option(ray_session, tmp_path):
    from experiments.config_files import load_config
    from rllib_society.checkpoints import load_modules
    from rllib_society.options import ModulePolicy, load_option
    from experiments.training import train

    config = load_config("configs/tworooms_primitives.yaml", {
        "env": "TwoRooms-Red-v0", "stop_timesteps": 256, "output": str(tmp_path / "red"),
    }, ["train_batch_size_per_learner=256", "minibatch_size=128", "num_envs_per_env_runner=2"])
    checkpoint = train(config)["checkpoint"]
    assert list(load_modules(checkpoint)) == ["default_policy"]
    policy = load_option(checkpoint, encode=None)
    assert isinstance(policy, ModulePolicy)
    observation, _ = society("Pretrain", []).base_env.reset(seed=0)
    assert policy.act(observation) in range(7)
    # The society takes checkpoint paths as its primitives.
    env = society("Pretrain", [checkpoint, checkpoint], option_max_steps=3)
    _, _, _, record = bid(env, [0.9, 0.1])
    assert env.num_primitives == 2 and record["winner"] == 0 and env._env_steps <= 3


def test_options_observe_what_option_observation_gives(ray_session, tmp_path):
    # A Taxi sub-task's policy saw the taxi's cell (25 inputs); on Taxi (500 states) it acts on
    # the cell that `option_observation` makes of the state.
    from experiments.config_files import load_config
    from experiments.training import train

    config = load_config("configs/taxi_options.yaml", {
        "env": "TaxiTask-R-Pickup-v0", "stop_timesteps": 256, "output": str(tmp_path / "r"),
    }, ["train_batch_size_per_learner=256", "minibatch_size=128", "num_envs_per_env_runner=2"])
    checkpoint = train(config)["checkpoint"]
    env = AuctionEnv({"env": "Taxi-v3", "options": [checkpoint, checkpoint], "option_done_action": [4, 5],
                      "option_max_steps": 5, "option_observation": "envs.taxi_tasks:taxi_cell_observation",
                      "clones": 2, "value_range": [-50, 20]})
    env.reset(seed=0)
    _, _, _, record = bid(env, [0.9, 0.1])
    assert record["winner"] == 0 and 1 <= env._env_steps <= 5


def test_q_star_over_options_by_value_iteration():
    from rllib_society.q_values import options_q_values

    # Two states, two options, by hand: V1 = max(2, 0.5 V0), Q00 = 1 + 0.9 V1 = 2.8, Q11 = 0.5 x 2.8.
    q = options_q_values(next_states=np.array([[1, 0], [0, 0]]), rewards=np.array([[1.0, 0.5], [2.0, 0.0]]),
                         discounts=np.array([[0.9, 0.81], [0.9, 0.5]]),
                         terminated=np.array([[False, True], [True, False]]))
    assert np.allclose(q, [[2.8, 0.5], [2.0, 1.4]])


class Always:
    """A stateless policy: one env action, always."""

    def __init__(self, action):
        self.action = action

    def act(self, observation):
        return self.action


def test_options_that_are_the_env_actions_have_the_tables_q_star_and_set_the_value_range():
    from rllib_society import optimal_q_values
    from rllib_society.auction_env import options_q_star, resolve_value_range

    config = {"env": "FrozenLake-v1", "env_config": {"is_slippery": False}, "gamma": 0.9,
              "options": [Always(a) for a in range(4)], "option_done_action": [0, 1, 2, 3]}
    flat = optimal_q_values(AuctionEnv(config).base_env.unwrapped.P, 0.9)
    assert np.allclose(options_q_star(config)[0], flat)
    # Taxi with only its pick-up and drop-off: the table restricted to those two actions.
    taxi = {"env": "Taxi-v3", "gamma": 0.9, "options": [Always(4), Always(5)], "option_done_action": [4, 5]}
    table = AuctionEnv(taxi).base_env.unwrapped.P
    restricted = optimal_q_values({s: {0: table[s][4], 1: table[s][5]} for s in table}, 0.9)
    assert np.allclose(options_q_star(taxi)[0], restricted)
    assert resolve_value_range(taxi) == pytest.approx((restricted.min(), max(1.0, restricted.max())))
    # A slippery lake is not deterministic: no Q* over options, and the env's own default range.
    slippery = {**config, "env_config": {"is_slippery": True}}
    assert options_q_star(slippery) is None and resolve_value_range(slippery) == (0.0, 1.0)
