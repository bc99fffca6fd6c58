"""Mental Rotation (spec section 4): a digit is rotated by +/-60 degrees and shifted; each action
applies one affine transform to the image, and after exactly `steps` actions a frozen digit
classifier judges the result (reward 1 if it names the digit, else 0).

Primitives are the spec's 6 transforms in the spec's order, then a larger library (scaling by 0.6
and half-size shifts) for societies of other sizes (``num_primitives``). Transforms are bilinear
affine warps with border padding, applied lazily to one image at a time.

Train the classifier once (otherwise the env trains it on first use)::

    python -m envs.mental_rotation train-classifier [--data digits|mnist] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.digit_data import DATA_SOURCES, load_split, on_canvas

#: Translation of the spec's shifts: 0.29 of the half-width (about 9 px on a 64-px canvas).
SHIFT = 0.29
#: Rotation of the spec's rotations, degrees (counter-clockwise as displayed is positive).
ROTATION = 60.0
#: Scale factor of the library's scaling primitives.
SCALE = 0.6


@dataclass(frozen=True)
class Affine:
    """A forward affine map of normalised image coordinates (x right, y down, both in [-1, 1]):
    a point p moves to ``matrix @ p + offset``."""

    matrix: tuple[tuple[float, float], tuple[float, float]]
    offset: tuple[float, float] = (0.0, 0.0)

    def then(self, other: Affine) -> Affine:
        """This map followed by `other`."""
        a, b = np.array(self.matrix), np.array(other.matrix)
        offset = b @ np.array(self.offset) + np.array(other.offset)
        return Affine(tuple(map(tuple, b @ a)), tuple(offset))

    @functools.cached_property
    def sampling_theta(self) -> np.ndarray:
        """The (2, 3) matrix `affine_grid` wants: where each output pixel samples the input."""
        inverse = np.linalg.inv(np.array(self.matrix))
        return np.hstack([inverse, -inverse @ np.array(self.offset)[:, None]]).astype(np.float32)


def rotation(degrees: float) -> Affine:
    """Counter-clockwise (as displayed) rotation about the canvas centre."""
    a = math.radians(degrees)
    return Affine(((math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))))


def shift(dx: float, dy: float) -> Affine:
    """Translation by (dx, dy) in normalised units (dy > 0 moves the content down)."""
    return Affine(((1.0, 0.0), (0.0, 1.0)), (dx, dy))


def scaling(factor: float) -> Affine:
    return Affine(((factor, 0.0), (0.0, factor)))


#: Direction name -> unit step (x, y); y grows downwards.
DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
#: The primitives' transforms: the spec's 6 first, in the spec's order, then the wider library.
LIBRARY: dict[str, Affine] = {
    "rotate+60": rotation(ROTATION),
    "rotate-60": rotation(-ROTATION),
    **{name: shift(SHIFT * dx, SHIFT * dy) for name, (dx, dy) in DIRECTIONS.items()},
    "scale_down": scaling(SCALE),
    "scale_up": scaling(1 / SCALE),
    **{f"{name}_half": shift(SHIFT * dx / 2, SHIFT * dy / 2) for name, (dx, dy) in DIRECTIONS.items()},
}
PRIMITIVES = tuple(LIBRARY)
SPEC_PRIMITIVES = 6
#: Names of the inverse of each start transform's parts.
INVERSE = {"up": "down", "down": "up", "left": "right", "right": "left",
           f"{ROTATION:g}": "rotate-60", f"{-ROTATION:g}": "rotate+60"}


def warp(images: torch.Tensor, maps: list[Affine]) -> torch.Tensor:
    """Applies ``maps[i]`` to ``images[i]`` ((B, H, W) floats): bilinear, border padding."""
    theta = torch.as_tensor(np.stack([m.sampling_theta for m in maps]), dtype=images.dtype)
    grid = F.affine_grid(theta, [len(images), 1, *images.shape[1:]], align_corners=False)
    warped = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    return warped[:, 0]


def start_map(degrees: float, direction: str | None) -> Affine:
    """The transform that makes a start state: rotate, then shift (if a direction is given)."""
    start = rotation(degrees)
    return start.then(LIBRARY[direction]) if direction else start


def inverse_primitives(degrees: float, direction: str | None) -> list[int]:
    """The primitives that undo a start transform: undo the shift, then undo the rotation."""
    names = ([INVERSE[direction]] if direction else []) + [INVERSE[f"{degrees:g}"]]
    return [PRIMITIVES.index(name) for name in names]


# ----------------------------------------------------------------------------------------------
# The frozen classifier
# ----------------------------------------------------------------------------------------------

#: Relative classifier paths start here, so every process finds the file.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Where classifiers live unless the config names a path: a user cache, not the source tree
#: (``$RLLIB_SOCIETY_CACHE``, else ``$XDG_CACHE_HOME/rllib-society``, else ``~/.cache/...``).
CLASSIFIER_DIR = Path(os.environ.get("RLLIB_SOCIETY_CACHE") or Path(
    os.environ.get("XDG_CACHE_HOME") or "~/.cache", "rllib-society")).expanduser() / "models"
#: Passes over the training digits (MNIST is 33x larger than scikit-learn's digits).
CLASSIFIER_EPOCHS = {"digits": 30, "mnist": 2}
CLASSIFIER_BATCH = 64
CLASSIFIER_LR = 1e-3


class DigitClassifier(nn.Module):
    """A small CNN on (B, H, W) canvases in [0, 1] -> 10 logits."""

    def __init__(self, canvas: int):
        super().__init__()
        self.canvas = canvas
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (canvas // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, 10),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images[:, None])

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, batch: int = 1024) -> np.ndarray:
        images = torch.as_tensor(images, dtype=torch.float32)
        return np.concatenate([self(images[i:i + batch]).argmax(-1).numpy()
                               for i in range(0, len(images), batch)])


def default_classifier_path(data: str, canvas: int) -> Path:
    return CLASSIFIER_DIR / f"{data}_canvas{canvas}_classifier.pt"


def resolve_path(path: str | Path) -> Path:
    """Relative paths are relative to the project folder, so every process finds the file."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def train_classifier(data: str = "digits", canvas: int = 32, mnist_dir: str | None = None,
                     epochs: int | None = None, seed: int = 0) -> tuple[DigitClassifier, float]:
    """Trains the classifier on the untransformed training digits; returns it (in eval mode)
    with its accuracy on the untransformed test digits."""
    torch.manual_seed(seed)
    train = load_split(data, "train", canvas, mnist_dir)
    images = torch.as_tensor(on_canvas(train.images, canvas))
    labels = torch.as_tensor(train.labels)
    model = DigitClassifier(canvas)
    optimizer = torch.optim.Adam(model.parameters(), lr=CLASSIFIER_LR)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs or CLASSIFIER_EPOCHS[data]):
        for batch in torch.randperm(len(labels), generator=generator).split(CLASSIFIER_BATCH):
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test = load_split(data, "test", canvas, mnist_dir)
    accuracy = float(np.mean(model.predict(on_canvas(test.images, canvas)) == test.labels))
    return model, accuracy


def save_classifier(model: DigitClassifier, path: Path, **info: Any) -> None:
    """Writes atomically (a temporary file renamed into place): no half-written classifier."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        torch.save({"state_dict": model.state_dict(), "canvas": model.canvas, **info}, handle)
    os.replace(handle.name, path)


def load_classifier(path: str | Path, data: str = "digits", canvas: int = 32,
                    mnist_dir: str | None = None) -> DigitClassifier:
    """Loads the frozen classifier; if the file is absent, trains one first and saves it."""
    path = resolve_path(path)
    if not path.is_file():
        print(f"[mental_rotation] no classifier at {path}: training one on the clean {data} "
              f"training digits (canvas {canvas})...", file=sys.stderr, flush=True)
        started = time.time()
        model, accuracy = train_classifier(data, canvas, mnist_dir)
        save_classifier(model, path, data=data, clean_test_accuracy=accuracy)
        print(f"[mental_rotation] saved {path}: clean test accuracy {accuracy:.3f} "
              f"({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["canvas"] != canvas:
        raise ValueError(f"classifier {path} was trained on a {saved['canvas']}-px canvas, the env "
                         f"uses canvas={canvas}; point classifier_path elsewhere.")
    model = DigitClassifier(canvas)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------------------
# The environment
# ----------------------------------------------------------------------------------------------


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
        self.classifier = load_classifier(
            classifier_path or default_classifier_path(data, canvas), data, canvas, mnist_dir)
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


# ----------------------------------------------------------------------------------------------
# Command line: train (and report) the classifier
# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mental Rotation tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train-classifier", help="train, save and report the frozen classifier")
    train.add_argument("--data", choices=DATA_SOURCES, default="digits")
    train.add_argument("--mnist-dir", help="folder with MNIST's IDX files (for --data mnist)")
    train.add_argument("--canvas", type=int, default=32)
    train.add_argument("--epochs", type=int, help="passes over the training digits")
    train.add_argument("--output", help="where to save it (default: <cache>/models/<data>_canvas<N>_classifier.pt)")
    args = parser.parse_args(argv)

    started = time.time()
    model, accuracy = train_classifier(args.data, args.canvas, args.mnist_dir, args.epochs)
    path = resolve_path(args.output or default_classifier_path(args.data, args.canvas))
    save_classifier(model, path, data=args.data, clean_test_accuracy=accuracy)
    env = MentalRotationEnv(args.data, args.mnist_dir, args.canvas, "test", classifier_path=str(path))
    episodes = env.test_episodes()
    floor = np.mean(model.predict(episodes["images"]) == episodes["labels"])
    corrected = episodes["images"]
    for step in range(2):
        corrected = env.apply(corrected, np.array([inv[step] for inv in episodes["inverse"]]))
    undone = np.mean(model.predict(corrected) == episodes["labels"])
    print(f"saved {path} ({time.time() - started:.0f} s)\n"
          f"test digits: {len(episodes['labels'])}\n"
          f"clean accuracy (untransformed):          {accuracy:.3f}\n"
          f"floor accuracy (transformed, uncorrected): {floor:.3f}\n"
          f"accuracy after the inverse transforms:   {undone:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
