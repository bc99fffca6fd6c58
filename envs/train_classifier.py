"""Trains, saves and reports the frozen Mental Rotation classifier ahead of time (the env
otherwise trains it on first use)::

    python -m envs.train_classifier [--data digits|mnist] [--mnist-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from envs.digit_classifier import default_classifier_path, resolve_path, save_classifier, train_classifier
from envs.digit_data import DATA_SOURCES
from envs.mental_rotation import MentalRotationEnv


def main(argv: list[str] | None = None) -> int:
    """Trains, saves and reports the classifier: clean accuracy, the floor (transformed digits,
    uncorrected) and the accuracy after the inverse transforms (the society's ceiling)."""
    train = argparse.ArgumentParser(description="Train the Mental Rotation classifier.")
    train.add_argument("--data", choices=DATA_SOURCES, default="digits")
    train.add_argument("--mnist-dir", help="folder with MNIST's IDX files (for --data mnist)")
    train.add_argument("--canvas", type=int, default=32)
    train.add_argument("--epochs", type=int, help="passes over the training digits")
    train.add_argument("--output", help="where to save it (default: <cache>/models/<data>_canvas<N>_classifier.pt)")
    args = train.parse_args(argv)

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
