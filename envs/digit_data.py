"""Digit images for Mental Rotation, without downloads: scikit-learn's bundled `load_digits`
(1,797 real handwritten 8x8 digits) by default, or MNIST IDX files from a folder the user gives.

Digits are stored once, at their on-canvas size (uint8), and pasted onto the canvas only when an
episode needs one. The canvas keeps the paper's proportions: a 28-px MNIST digit on a 64-px
canvas, so a digit spans ``round(canvas * 28 / 64)`` pixels.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

#: Allowed values of the ``data`` setting.
DATA_SOURCES = ("digits", "mnist")
#: Share of scikit-learn's digits held out for testing (a fixed permutation, seed below).
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
#: MNIST's file stems (each may also end in ``.gz``).
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: IDX type codes: numpy dtype (big-endian where it matters).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class DigitSplit:
    """Digits of one split: ``images`` (N, d, d) uint8 at on-canvas size, ``labels`` (N,) int."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def digit_size(canvas: int) -> int:
    """Side of a digit on a `canvas`-pixel canvas (28 px on 64, the paper's MNIST layout)."""
    return round(canvas * 28 / 64)


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (MNIST's format; gzipped if the name ends in ``.gz``)."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}).")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    expected = start + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, but the header {shape} needs {expected}.")
    return np.frombuffer(raw, dtype, offset=start).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Writes `array` as an IDX file (uint8 or int32); used to make small test files."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    code = codes[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(_IDX_DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise ValueError(f"mnist_dir {str(folder)!r} has no {stem}[.gz]; it needs the four MNIST IDX "
                     f"files: {', '.join(s for pair in MNIST_FILES.values() for s in pair)}.")


def _resize(images: np.ndarray, size: int, scale: float) -> np.ndarray:
    """Bilinear resize of (N, h, w) images with values in [0, scale] to uint8 (N, size, size)."""
    if images.shape[1:] == (size, size) and scale == 255:
        return images.astype(np.uint8)
    tensor = torch.as_tensor(images, dtype=torch.float32)[:, None] / scale
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return (resized[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@functools.lru_cache(maxsize=4)
def load_split(source: str, split: str, canvas: int, mnist_dir: str | None = None) -> DigitSplit:
    """One split (``train`` or ``test``) of a dataset at the canvas's digit size.

    Cached per process, so every env of an env runner shares one copy of the data.
    """
    if source not in DATA_SOURCES:
        raise ValueError(f"data={source!r} is not allowed; data must be one of {', '.join(DATA_SOURCES)}.")
    if split not in MNIST_FILES:
        raise ValueError(f"split={split!r} is not allowed; split must be train or test.")
    size = digit_size(canvas)
    if source == "mnist":
        if not mnist_dir:
            raise ValueError("data='mnist' needs mnist_dir, the folder holding the MNIST IDX files.")
        folder = Path(mnist_dir).expanduser()
        images_stem, labels_stem = MNIST_FILES[split]
        images, labels = read_idx(_find(folder, images_stem)), read_idx(_find(folder, labels_stem))
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match.")
        return DigitSplit(_resize(images, size, 255), labels.astype(np.int64))

    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(digits.target))
    n_test = round(len(order) * DIGITS_TEST_FRACTION)
    chosen = order[:n_test] if split == "test" else order[n_test:]
    return DigitSplit(_resize(digits.images[chosen], size, 16), digits.target[chosen].astype(np.int64))


def on_canvas(digits: np.ndarray, canvas: int) -> np.ndarray:
    """Pastes (N, d, d) uint8 digits in the middle of blank canvases: float32 (N, canvas, canvas)
    in [0, 1]."""
    size = digits.shape[-1]
    start = (canvas - size) // 2
    out = np.zeros((len(digits), canvas, canvas), dtype=np.float32)
    out[:, start:start + size, start:start + size] = digits / 255.0
    return out
