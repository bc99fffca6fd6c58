"""The frozen digit classifier that judges Mental Rotation episodes: a small CNN trained once on
the clean training digits and cached outside the source tree (``$RLLIB_SOCIETY_CACHE``, else
``~/.cache/rllib-society/models``). `ensure_classifier` trains it when the file is absent, so
the first env made (by `run.py`'s check, before Ray starts) pays for it once.

Train (and report) it ahead of time with ``python -m envs.train_classifier``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.digit_data import DATA_SOURCES, load_split, on_canvas

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


def ensure_classifier(path: str | Path, data: str = "digits", canvas: int = 32,
                      mnist_dir: str | None = None) -> Path:
    """The classifier file at `path` (relative: to the project folder), trained on the clean
    training digits and saved first if it is absent."""
    path = resolve_path(path)
    if not path.is_file():
        print(f"[digit_classifier] no classifier at {path}: training one on the clean {data} "
              f"training digits (canvas {canvas})...", file=sys.stderr, flush=True)
        started = time.time()
        model, accuracy = train_classifier(data, canvas, mnist_dir)
        save_classifier(model, path, data=data, clean_test_accuracy=accuracy)
        print(f"[digit_classifier] saved {path}: clean test accuracy {accuracy:.3f} "
              f"({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    return path


def load_classifier(path: str | Path, canvas: int = 32) -> DigitClassifier:
    """Loads a saved classifier, frozen (eval mode, no gradients).

    Raises:
        ValueError: if it was trained on another canvas size.
    """
    path = resolve_path(path)
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
