"""Mental Rotation: the transforms on hand-made images, the IDX loader on files written here,
the classifier's first-use training, and the 2-step episode and its reward."""

from __future__ import annotations

import json

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from helpers import read_scalars, run_script
from envs.digit_data import digit_size, load_split, on_canvas, read_idx, write_idx
from envs.digit_classifier import ensure_classifier, load_classifier
from envs.image_transforms import LIBRARY, PRIMITIVES, SHIFT, inverse_primitives, start_map, warp
from envs.mental_rotation import MentalRotationEnv

CANVAS = 32
HALF = CANVAS / 2


def centroid(image: torch.Tensor) -> np.ndarray:
    """(x, y) intensity centroid in pixels from the canvas centre (x right, y down)."""
    image = image.numpy()
    rows, cols = np.indices(image.shape)
    total = image.sum()
    return np.array([(cols * image).sum() / total, (rows * image).sum() / total]) - (CANVAS - 1) / 2


def blob(dx: int = 0, dy: int = 0) -> torch.Tensor:
    """A 2x2 lit square centred (dx, dy) pixels from the canvas centre."""
    image = torch.zeros(1, CANVAS, CANVAS)
    row, col = CANVAS // 2 - 1 + dy, CANVAS // 2 - 1 + dx
    image[0, row:row + 2, col:col + 2] = 1.0
    return image


def apply(name: str, image: torch.Tensor) -> torch.Tensor:
    return warp(image, [LIBRARY[name]])


def test_the_first_six_primitives_are_the_spec_transforms_in_the_spec_order():
    assert PRIMITIVES[:6] == ("rotate+60", "rotate-60", "up", "down", "left", "right")
    assert len(PRIMITIVES) > 6  # the wider library for larger societies


@pytest.mark.parametrize("name, direction", [("up", (0, -1)), ("down", (0, 1)),
                                             ("left", (-1, 0)), ("right", (1, 0))])
def test_a_shift_moves_a_lit_pixel_by_029_of_the_half_width(name, direction):
    moved = centroid(apply(name, blob())[0])
    expected = SHIFT * HALF * np.array(direction)  # 4.64 px on a 32-px canvas
    np.testing.assert_allclose(moved, expected, atol=0.05)


def test_half_shifts_move_half_as_far():
    np.testing.assert_allclose(centroid(apply("right_half", blob())[0]), [SHIFT * HALF / 2, 0], atol=0.05)


@pytest.mark.parametrize("name, sign", [("rotate+60", 1), ("rotate-60", -1)])
def test_rotation_turns_a_pixel_about_the_centre_counter_clockwise_for_plus(name, sign):
    # A pixel 8 px right of the centre goes to 60 degrees above (+) or below (-) the x axis.
    moved = centroid(apply(name, blob(dx=8))[0])
    angle = np.radians(60)
    np.testing.assert_allclose(moved, [8 * np.cos(angle), -sign * 8 * np.sin(angle)], atol=0.3)


def test_rotating_a_symmetric_shape():
    # A centred (smooth) disk is unchanged by any rotation.
    rows, cols = np.indices((CANVAS, CANVAS)) - (CANVAS - 1) / 2
    disk = torch.as_tensor(np.exp(-(rows ** 2 + cols ** 2) / 18).astype(np.float32))[None]
    for name in ("rotate+60", "rotate-60"):
        assert (apply(name, disk) - disk).abs().max() < 0.03
    # A bar through the centre is symmetric under 180 degrees: +60 equals -60 twice (-120).
    bar = torch.zeros(1, CANVAS, CANVAS)
    bar[0, 15:17, 6:26] = 1.0
    once = apply("rotate+60", bar)
    twice = apply("rotate-60", apply("rotate-60", bar))
    assert (once - twice).abs().mean() < 0.02
    assert (once - bar).abs().mean() > 0.05  # and it did turn


def test_scaling_keeps_the_centre_and_shrinks_distances():
    moved = centroid(apply("scale_down", blob(dx=10))[0])
    np.testing.assert_allclose(moved, [6.0, 0.0], atol=0.3)


def test_the_inverse_is_undo_the_shift_then_undo_the_rotation():
    assert inverse_primitives(60, "up") == [PRIMITIVES.index("down"), PRIMITIVES.index("rotate-60")]
    assert inverse_primitives(-60, "left") == [PRIMITIVES.index("right"), PRIMITIVES.index("rotate+60")]
    assert inverse_primitives(60, None) == [PRIMITIVES.index("rotate-60")]
    image = blob(dx=3, dy=-2)
    start = warp(image, [start_map(60, "up")])
    assert abs(centroid(start[0]) - centroid(image[0])).max() > 3
    undone = start
    for k in inverse_primitives(60, "up"):
        undone = warp(undone, [LIBRARY[PRIMITIVES[k]]])
    np.testing.assert_allclose(centroid(undone[0]), centroid(image[0]), atol=0.1)


# ---------------------------------------------------------------------------------- data


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / f"images{suffix}", images)
    write_idx(tmp_path / f"labels{suffix}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / f"images{suffix}"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"labels{suffix}"), labels)


def test_idx_reader_rejects_a_bad_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01\x00")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(ValueError, match="bytes"):
        read_idx(tmp_path / "short")


def write_fake_mnist(folder, count: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    labels = (np.arange(count) % 10).astype(np.uint8)
    for images_name, labels_name in [("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                                     ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]:
        write_idx(folder / images_name, rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / labels_name, labels)
    return labels


def test_mnist_loader_reads_a_folder_of_idx_files(tmp_path):
    labels = write_fake_mnist(tmp_path)
    for split in ("train", "test"):
        digits = load_split("mnist", split, 64, str(tmp_path))
        assert digits.images.shape == (6, 28, 28) and digits.images.dtype == np.uint8
        np.testing.assert_array_equal(digits.labels, labels)
    # On a 32-px canvas digits shrink to the paper's proportion (28 of 64).
    assert load_split("mnist", "train", 32, str(tmp_path)).images.shape == (6, digit_size(32), digit_size(32))
    np.testing.assert_array_equal(
        read_idx(tmp_path / "t10k-images-idx3-ubyte"), load_split("mnist", "test", 64, str(tmp_path)).images)


def test_mnist_loader_names_the_missing_file(tmp_path):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        load_split("mnist", "test", 64, str(tmp_path))


def test_the_env_runs_on_mnist_files_with_its_own_classifier(tmp_path, capsys):
    write_fake_mnist(tmp_path)
    env = MentalRotationEnv(data="mnist", mnist_dir=str(tmp_path), canvas=64,
                            classifier_path=str(tmp_path / "mnist_classifier.pt"))
    assert "training one" in capsys.readouterr().err and (tmp_path / "mnist_classifier.pt").is_file()
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 1) and 0 <= info["index"] < 6
    env.step(0)
    assert env.step(1)[2]  # terminated after 2 steps


def test_digits_train_and_test_splits_are_disjoint_and_cover_the_dataset():
    train, test = load_split("digits", "train", CANVAS), load_split("digits", "test", CANVAS)
    assert len(train) + len(test) == 1797 and len(test) == 359
    train_set = {image.tobytes() for image in train.images}
    # scikit-learn's digits hold a few exact duplicates; the split itself is by index.
    assert sum(image.tobytes() in train_set for image in test.images) < 5
    canvas = on_canvas(test.images[:2], CANVAS)
    assert canvas.shape == (2, CANVAS, CANVAS) and canvas.max() <= 1.0
    assert canvas[:, :5].max() == 0  # the digit sits in the middle, the border is blank


# ----------------------------------------------------------------------------- classifier & env


@pytest.mark.integration
def test_classifier_is_trained_on_first_use_and_then_reused(tmp_path, capsys):
    path = tmp_path / "classifier.pt"
    first = load_classifier(ensure_classifier(path, "digits", CANVAS), CANVAS)
    assert path.is_file() and "training one" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
    second = load_classifier(ensure_classifier(path, "digits", CANVAS), CANVAS)
    assert "training" not in capsys.readouterr().err
    test = load_split("digits", "test", CANVAS)
    predictions = second.predict(on_canvas(test.images, CANVAS))
    assert np.mean(predictions == test.labels) >= 0.95  # the clean-accuracy bar
    np.testing.assert_array_equal(predictions, first.predict(on_canvas(test.images, CANVAS)))
    with pytest.raises(ValueError, match="canvas"):
        load_classifier(path, 48)


@pytest.fixture(scope="module")
def env():
    return gym.make("MentalRotation-v0", split="test").unwrapped


def test_an_episode_is_two_steps_and_the_reward_is_the_classifiers_verdict(env):
    rewards = []
    for seed in range(40):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (CANVAS, CANVAS, 1) and env.observation_space.contains(obs)
        first, second = inverse_primitives(info["rotation"], info["shift"])
        obs, reward, terminated, truncated, _ = env.step(first)
        assert (reward, terminated, truncated) == (0.0, False, False)
        obs, reward, terminated, truncated, _ = env.step(second)
        assert terminated and not truncated
        verdict = env.classifier.predict(torch.as_tensor(obs[None, :, :, 0]))[0] == info["label"]
        assert reward == float(verdict)
        rewards.append(reward)
    # Undoing the transform lets the classifier read almost every digit.
    assert np.mean(rewards) >= 0.85


def test_doing_the_wrong_thing_is_mostly_wrong(env):
    rewards = []
    for seed in range(40):
        _, info = env.reset(seed=seed)
        same_way = PRIMITIVES.index("rotate+60" if info["rotation"] > 0 else "rotate-60")
        env.step(same_way)
        rewards.append(env.step(same_way)[1])
    assert np.mean(rewards) <= 0.3


def test_test_episodes_are_fixed_and_floor_is_low(env):
    first, again = env.test_episodes(50, seed=3), env.test_episodes(50, seed=3)
    torch.testing.assert_close(first["images"], again["images"])
    floor = np.mean(env.classifier.predict(first["images"]) == first["labels"])
    clean = np.mean(env.classifier.predict(first["clean"]) == first["labels"])
    assert floor < 0.4 < 0.9 < clean


def test_envs_of_one_process_share_one_copy_of_the_digits(env):
    other = gym.make("MentalRotation-v0", split="test").unwrapped
    assert other.digits is env.digits
    # 359 test digits of 14x14 uint8: the data a test env holds.
    assert env.digits.images.nbytes == 359 * 14 * 14


@pytest.mark.parametrize("kwargs, field", [
    ({"num_primitives": 13}, "num_primitives"), ({"data": "cifar"}, "data"),
    ({"canvas": 30}, "canvas"), ({"shifts": ["diagonal"]}, "shifts"), ({"rotations": [45]}, "rotations"),
])
def test_bad_env_arguments_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MentalRotationEnv(**kwargs)


def test_a_larger_library_gives_a_larger_society():
    from rllib_society.auction_env import AuctionEnv

    society = AuctionEnv({"env": "MentalRotation-v0", "env_config": {"num_primitives": 10}, "value_range": [0, 1]})
    assert society.num_primitives == 10 and society.num_bidders == 20


# ------------------------------------------------------------------------------ end to end


@pytest.mark.integration
@pytest.mark.parametrize("algo", ["society", "monolithic"])
def test_run_py_reports_held_out_accuracy_and_draws_test_episodes(tmp_path, algo):
    output = tmp_path / algo
    done = run_script(
        "run.py", "--config", "configs/mental_rotation.yaml", "--algo", algo,
        "--stop-timesteps", "512", "--output", str(output),
        "--set", "train_batch_size_per_learner=256", "--set", "eval_episodes=60",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["algo"] == algo and summary["env_steps"] >= 512
    # 60 held-out digits: the floor (uncorrected) is low, the clean digits are read.
    assert summary["floor_accuracy"] < 0.4 and summary["clean_accuracy"] >= 0.9
    assert 0 <= summary["test_accuracy"] <= 1 and 0 <= summary["inverse_rate"] <= 1
    assert summary["greedy_return"] == summary["test_accuracy"]
    assert "test accuracy (held out)" in done.stdout
    scalars = read_scalars(output / "trial")
    assert scalars["ray/tune/society/test_accuracy"][-1] == pytest.approx(summary["test_accuracy"])
    assert len(scalars["ray/tune/society/floor_accuracy"]) == summary["iterations"]
    grid = plt.imread(output / "test_episodes.png")
    assert grid.shape[0] > 2 * grid.shape[1]  # 8 episodes, one per row: input and 2 steps
    assert summary["test_episodes_plot"] == str(output / "test_episodes.png")
