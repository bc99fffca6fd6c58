"""Pictures of a trained society's greedy episodes from its checkpoint: the strip of one episode
of a society of options (TwoRooms), and the grid of held-out test episodes (Mental Rotation)."""

from __future__ import annotations

from pathlib import Path

from experiments.config import ExperimentConfig

#: The grid of held-out test episodes (envs with test episodes), and how many rows it shows.
TEST_EPISODES_PLOT = "test_episodes.png"
TEST_EPISODES_SHOWN = 8
#: The strip of one greedy episode of a society of options (TwoRooms).
EPISODE_PLOT = "episode.png"


def plot_checkpoint_episode(config: ExperimentConfig, checkpoint: str, path: Path) -> None:
    """A strip of one greedy episode of a trained society of options: each auction's winner
    and bids on the rendered state."""
    from rllib_society import load_modules
    from experiments.evaluation import evaluation_env, greedy_episode
    from experiments.reporting import plot_episode_strip

    society_config = config.society_config()
    society_config["env_config"] = {**society_config["env_config"], "render_mode": "rgb_array"}
    frames: list = []
    env = evaluation_env(society_config)
    greedy_episode(env, load_modules(checkpoint), seed=config.seed, frames=frames)
    names = [f"p{k} {Path(option).name[:28]}" for k, option in enumerate(config.options)]
    actions = getattr(env.base_env.unwrapped, "actions", None)  # MiniGrid names its actions
    inner_names = [action.name for action in actions] if actions is not None else None
    plot_episode_strip(frames, names, path, title=f"{config.env}: greedy society ({config.auction}, "
                                                  f"{config.clones} clones)", inner_names=inner_names)


def plot_checkpoint_test_episodes(config: ExperimentConfig, checkpoint: str, path: Path) -> bool:
    """For envs with held-out test episodes: a grid of the trained society's (or baseline's)
    greedy test episodes. Returns False for other envs."""
    from experiments.transform_evaluation import (
        checkpoint_chooser, evaluate_on_test, plot_test_episodes, test_env,
    )

    env = test_env(config.env, config.env_config)
    if env is None:
        return False
    _, record = evaluate_on_test(env, checkpoint_chooser(checkpoint, config.algo), count=TEST_EPISODES_SHOWN)
    names = [f"p{k} {name}" for k, name in enumerate(env.primitive_names)]
    what = "monolithic PPO" if config.algo == "monolithic" else f"society ({config.auction}, {config.clones} clones)"
    plot_test_episodes(record, names, path, count=TEST_EPISODES_SHOWN, title=f"{config.env}: {what}, held-out digits")
    return True
