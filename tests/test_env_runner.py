"""SocietyEnvRunner: RLlib's multi-agent env runner with its two profiled costs removed must
sample the same data and report the same step counts."""

import pytest

from rllib_society.config import load_config
from rllib_society.env_runner import NumpyOnceEpisode, SocietyEnvRunner


@pytest.fixture(scope="module")
def runner(ray_session):
    from rllib_society.algo_config import build_algo_config

    config = load_config("configs/chain.yaml", {"clones": 2, "dropout": 0.5})
    algo = build_algo_config(config).build_algo()
    yield algo.env_runner
    algo.stop()


def test_counts_match_the_sampled_episodes(runner):
    assert isinstance(runner, SocietyEnvRunner)
    runner.get_metrics()  # start from empty per-call counters
    episodes = runner.sample(num_timesteps=1000)
    metrics = runner.get_metrics()
    assert metrics["num_env_steps_sampled"] == sum(e.env_steps() for e in episodes)
    assert metrics["num_episodes"] == sum(e.is_done for e in episodes)
    agent_steps, module_steps = {}, {}
    for episode in episodes:
        for aid, agent_episode in episode.agent_episodes.items():
            agent_steps[aid] = agent_steps.get(aid, 0) + len(agent_episode)
            module = episode.module_for(aid)
            module_steps[module] = module_steps.get(module, 0) + len(agent_episode)
    assert metrics["num_agent_steps_sampled"] == agent_steps
    assert metrics["num_module_steps_sampled"] == module_steps
    assert set(module_steps) == {"p0", "p1"}


def test_sampling_bidders_stay_in_eval_mode(runner):
    runner.sample(num_timesteps=100)
    modules = [m for _, m in runner.module._rl_modules.items()]
    assert modules and not any(m.training for m in modules)


def test_every_episode_is_numpy_and_converted_once(runner):
    episodes = runner.sample(num_timesteps=400)
    assert episodes and all(isinstance(e, NumpyOnceEpisode) and e.is_numpy for e in episodes)
    episode = episodes[0]
    observations = episode.agent_episodes[next(iter(episode.agent_episodes))].observations.data
    assert episode.to_numpy() is episode  # a second call changes nothing
    assert episode.agent_episodes[next(iter(episode.agent_episodes))].observations.data is observations
