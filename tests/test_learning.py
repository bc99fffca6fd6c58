"""Learning tests: one per reference env, a fixed seed and the YAML's budget (or a stated smaller
one), asserting what the society learned. Slow: deselect with ``-m "not learning"``."""

import pytest

from rllib_society.config import load_config
from rllib_society.training import train

pytestmark = pytest.mark.learning


def train_config(tmp_path, path, **overrides):
    config = load_config(path, {"output": str(tmp_path / "run"), "seed": 0, **overrides})
    return train(config)


def test_bandit_bids_rank_the_arms_and_the_best_bids_its_value(ray_session, tmp_path):
    # 20k steps: the best arm is priced and all arms are ranked; the low arms' exact values need
    # longer (see README), since only auctions against their own twin pin them.
    summary = train_config(tmp_path, "configs/bandit.yaml", stop_timesteps=20_000)
    bids = [summary["mean_bids"]["0"][f"p{k}"] for k in range(4)]
    assert bids == sorted(bids), f"bids should rise with the arm's value 0.2..0.8: {bids}"
    assert abs(bids[3] - 0.8) <= 0.05, f"best arm bids {bids[3]:.3f}, value 0.8 (tolerance 0.05)"
    assert summary["greedy_return"] == pytest.approx(0.8)


def test_chain_walks_right_with_bids_near_q_star(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/chain.yaml")
    assert summary["greedy_return"] == pytest.approx(0.8) and summary["greedy_length"] == 5
    assert summary["bid_error"] <= 0.05, f"bid error {summary['bid_error']:.4f} (tolerance 0.05)"


def test_duality_finds_the_alternation(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/duality.yaml")
    assert summary["greedy_return"] == pytest.approx(5.0), summary["mean_bids"]
