"""Mental Rotation (spec section 4): a digit is rotated by +/-60 degrees and shifted; each action
applies one primitive transform (`envs.image_transforms`) to the image, and after exactly `steps`
actions the frozen classifier (`envs.digit_classifier`) judges the result (reward 1 if it names
the digit, else 0). Transforms are applied lazily to one image at a time.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.digit_classifier import default_classifier_path, ensure_classifier, load_classifier
from envs.digit_data import DATA_SOURCES, load_split, on_canvas
from envs.image_transforms import (
    DIRECTIONS,
    INVERSE,
    LIBRARY,
    PRIMITIVES,
    ROTATION,
    SPEC_PRIMITIVES,
    inverse_primitives,
    start_map,
    warp,
)


class MentalRotationEnv(gym.Env):
    """State: the current image, (canvas, canvas, 1) in [0, 1]. Action k: apply primitive k.

    Each episode draws a digit of `split`, rotates it by one of `rotations` degrees and shifts
    it by one of `shifts` (none if empty); after `steps` actions the episode terminates with
    reward 1 if the classifier names the digit. Infos carry the digit's label and start transform.

    Args:
        data: "digits" (scikit-learn's, bundled) or "mnist" (IDX files in `mnist_dir`).
        canvas: image side in pixels; shifts scale with it (0.29 of the half-width).
        split: "train" or "test" digits (the society trains on "train").
        num_primitives: the first N primitives of `PRIMITIVES` (6 = the spec's society).
        classifier_path: the frozen classifier (trained and saved here if absent).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, data: str = "digits", mnist_dir: str | None = None, canvas: int = 32,
                 split: str = "train", num_primitives: int = SPEC_PRIMITIVES, steps: int = 2,
                 rotations: tuple = (ROTATION, -ROTATION), shifts: tuple = tuple(DIRECTIONS),
                 classifier_path: str | None = None, render_mode: str | None = None):
        if data not in DATA_SOURCES:
            raise ValueError(f"data={data!r} is not allowed; data must be one of {', '.join(DATA_SOURCES)}.")
        if not 1 <= num_primitives <= len(PRIMITIVES):
            raise ValueError(f"num_primitives={num_primitives} is not allowed; it must be in "
                             f"1..{len(PRIMITIVES)} (library: {', '.join(PRIMITIVES)}).")
        if canvas % 4 or canvas < 16:
            raise ValueError(f"canvas={canvas} is not allowed; canvas must be a multiple of 4, >= 16.")
        bad = [d for d in shifts if d not in DIRECTIONS] + [r for r in rotations if f"{r:g}" not in INVERSE]
        if bad or not rotations or steps < 1:
            raise ValueError(f"rotations={list(rotations)}, shifts={list(shifts)}, steps={steps}: "
                             f"rotations must be a non-empty subset of [{ROTATION:g}, {-ROTATION:g}], "
                             f"shifts a subset of {list(DIRECTIONS)}, steps >= 1.")
        self.digits = load_split(data, split, canvas, mnist_dir)
        self.canvas, self.steps, self.render_mode = canvas, steps, render_mode
        self.rotations, self.shifts = list(rotations), list(shifts)
        self.primitive_names = PRIMITIVES[:num_primitives]
        self.maps = [LIBRARY[name] for name in self.primitive_names]
        path = ensure_classifier(classifier_path or default_classifier_path(data, canvas), data, canvas, mnist_dir)
        self.classifier = load_classifier(path, canvas)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (canvas, canvas, 1), np.float32)
        self.action_space = gym.spaces.Discrete(num_primitives)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.digits)))
        degrees = float(self.rotations[self.np_random.integers(len(self.rotations))])
        direction = self.shifts[self.np_random.integers(len(self.shifts))] if self.shifts else None
        clean = torch.as_tensor(on_canvas(self.digits.images[index:index + 1], self.canvas))
        self.image = warp(clean, [start_map(degrees, direction)])
        self.label = int(self.digits.labels[index])
        self.t = 0
        info = {"label": self.label, "index": index, "rotation": degrees, "shift": direction}
        return self._obs(), info

    def step(self, action: int):
        self.image = warp(self.image, [self.maps[int(action)]])
        self.t += 1
        terminated = self.t >= self.steps
        correct = terminated and int(self.classifier.predict(self.image)[0]) == self.label
        return self._obs(), float(correct), terminated, False, {"label": self.label}

    def _obs(self) -> np.ndarray:
        return self.image[0, :, :, None].numpy()

    def render(self) -> np.ndarray:
        gray = (self.image[0].numpy() * 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)

    def test_episodes(self, count: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Fixed start states of the split's digits (all, or the first `count`), for evaluation:
        ``images`` (N, H, W) tensor, ``clean`` (untransformed), ``labels``, ``rotation``,
        ``shift`` and ``inverse`` (the primitives that undo each start transform)."""
        count = len(self.digits) if count is None else min(count, len(self.digits))
        rng = np.random.default_rng(seed)
        degrees = [float(self.rotations[i]) for i in rng.integers(len(self.rotations), size=count)]
        directions = ([self.shifts[i] for i in rng.integers(len(self.shifts), size=count)]
                      if self.shifts else [None] * count)
        clean = torch.as_tensor(on_canvas(self.digits.images[:count], self.canvas))
        return {
            "clean": clean,
            "images": warp(clean, [start_map(d, s) for d, s in zip(degrees, directions)]),
            "labels": self.digits.labels[:count],
            "rotation": degrees,
            "shift": directions,
            "inverse": [inverse_primitives(d, s) for d, s in zip(degrees, directions)],
        }

    def apply(self, images: torch.Tensor, primitives: np.ndarray) -> torch.Tensor:
        """Applies primitive ``primitives[i]`` to ``images[i]`` for a batch."""
        return warp(images, [self.maps[int(k)] for k in primitives])
