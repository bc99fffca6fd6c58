"""Held-out evaluation for envs whose actions transform the state (Mental Rotation): every test
episode runs at once, as a batch, with greedy choices (the society's highest mean bid, or the
monolithic policy's most likely action), and the env's frozen classifier judges the result.

An env takes part by offering ``test_episodes(count, seed)``, ``apply(images, primitives)``,
``classifier`` and ``steps`` (see `envs.mental_rotation.MentalRotationEnv`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule

from rllib_society import greedy_bids, make_base_env

#: chooser(images (B, H, W)) -> (chosen primitive per image (B,), bids (B, N) or None).
Chooser = Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]


def test_env(env_id: str, env_config: dict) -> gym.Env | None:
    """The env on its held-out split, if it offers test episodes; else None."""
    env = make_base_env(env_id, env_config)
    has_test_split = hasattr(env.unwrapped, "test_episodes")
    env.close()
    return make_base_env(env_id, {**env_config, "split": "test"}).unwrapped if has_test_split else None


def society_chooser(modules: dict[str, RLModule]) -> Chooser:
    """The greedy auction: the primitive with the highest mean bid wins (ties: lowest index)."""

    def choose(images: torch.Tensor):
        bids = greedy_bids(modules, images[..., None])
        return bids.argmax(axis=1), bids

    return choose


def policy_chooser(module: RLModule) -> Chooser:
    """The monolithic policy's most likely action."""

    def choose(images: torch.Tensor):
        with torch.no_grad():
            logits = module.forward_inference({Columns.OBS: images[..., None]})[Columns.ACTION_DIST_INPUTS]
        return logits.argmax(-1).numpy(), None

    return choose


def checkpoint_chooser(checkpoint: str | Path, algo: str) -> Chooser:
    """The greedy chooser of a trained society (or monolithic policy) from an RLlib checkpoint."""
    from rllib_society import load_modules, load_policy

    return policy_chooser(load_policy(checkpoint)) if algo == "monolithic" else society_chooser(load_modules(checkpoint))


def evaluate_on_test(env, choose: Chooser, count: int | None = None, seed: int = 0) -> tuple[dict, dict]:
    """Runs the test episodes (the first `count`) greedily.

    Returns:
        metrics: ``test_accuracy`` (after the chosen steps), ``floor_accuracy`` (the same start
        images, uncorrected), ``clean_accuracy`` (untransformed digits) and ``inverse_rate`` (share
        of episodes whose choices are exactly the inverse of their start transform);
        record: images after each step, choices, bids, predictions and labels, for `plot_test_episodes`.
    """
    episodes = env.test_episodes(count, seed)
    images, stages, choices, bids = episodes["images"], [episodes["images"]], [], []
    for _ in range(env.steps):
        chosen, step_bids = choose(images)
        images = env.apply(images, chosen)
        stages.append(images)
        choices.append(chosen)
        bids.append(step_bids)
    labels = episodes["labels"]
    predictions = env.classifier.predict(images)
    choices = np.stack(choices, axis=1)
    inverse = episodes["inverse"]
    metrics = {
        "test_accuracy": float(np.mean(predictions == labels)),
        "floor_accuracy": float(np.mean(env.classifier.predict(episodes["images"]) == labels)),
        "clean_accuracy": float(np.mean(env.classifier.predict(episodes["clean"]) == labels)),
        "inverse_rate": float(np.mean([list(c) == list(i) for c, i in zip(choices, inverse)])),
    }
    record = {"stages": stages, "choices": choices, "bids": bids, "predictions": predictions,
              "labels": labels}
    return metrics, record


def plot_test_episodes(record: dict[str, Any], names: list[str], path: Path, count: int = 8,
                       title: str = "") -> None:
    """A PNG grid, one test episode per row: the input and the image after each step, with the
    winner (and every primitive's bid) above each step and the classifier's verdict at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages, count = record["stages"], min(count, len(record["labels"]))
    figure, axes = plt.subplots(count, len(stages), figsize=(2.4 * len(stages), 2.2 * count),
                                squeeze=False)
    for row in range(count):
        for column, stage in enumerate(stages):
            axis = axes[row][column]
            axis.imshow(stage[row].numpy(), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_title(f"input (digit {record['labels'][row]})", fontsize=8)
                continue
            step = column - 1
            winner = int(record["choices"][row, step])
            text = f"step {column}: {names[winner]}"
            bids = record["bids"][step]
            if bids is not None:
                text += f" ({bids[row, winner]:.2f})\nbids " + " ".join(f"{b:.2f}" for b in bids[row])
            axis.set_title(text, fontsize=6 if bids is not None else 8)
            if column == len(stages) - 1:
                predicted = int(record["predictions"][row])
                verdict = "right" if predicted == record["labels"][row] else "wrong"
                axis.set_xlabel(f"classifier: {predicted} ({verdict})", fontsize=8,
                                color="green" if verdict == "right" else "red")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
