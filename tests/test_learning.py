"""Learning tests: one per reference env, a fixed seed and the YAML's budget (or a stated smaller
one), asserting what the society learned. Slow: deselect with ``-m "not learning"``."""

import pytest

from rllib_society.config import load_config
from rllib_society.training import train

pytestmark = pytest.mark.learning


def train_config(tmp_path, path, **overrides):
    config = load_config(path, {"output": str(tmp_path / "run"), "seed": 0, **overrides})
    return train(config)


def test_bandit_bids_its_arm_values(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/bandit.yaml")
    bids = summary["mean_bids"]["0"]
    errors = {p: abs(bids[p] - (k + 1) / 5) for k, p in enumerate(sorted(bids))}
    assert max(errors.values()) <= 0.05, f"|bid - arm value| per arm: {errors} (tolerance 0.05)"
    assert summary["greedy_return"] == pytest.approx(0.8)


def test_chain_walks_right_with_bids_near_q_star(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/chain.yaml")
    assert summary["greedy_return"] == pytest.approx(0.8) and summary["greedy_length"] == 5
    assert summary["bid_error"] <= 0.05, f"bid error {summary['bid_error']:.4f} (tolerance 0.05)"


def test_duality_finds_the_alternation(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/duality.yaml")
    assert summary["greedy_return"] == pytest.approx(5.0), summary["mean_bids"]
