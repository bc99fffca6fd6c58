"""The Mental Rotation primitives (spec section 4): affine transforms of a digit image, the
spec's 6 (rotate by +/-60 degrees, shift up/down/left/right) then a larger library (scaling by
0.6 and half-size shifts) for societies of other sizes; bilinear warps with border padding."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

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
