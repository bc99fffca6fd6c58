"""Learning tests: one per reference env, a fixed seed and the YAML's budget (or a stated smaller
one), asserting what the society learned. Slow: deselect with ``-m "not learning"``."""

import pytest

from rllib_society.config import load_config
from rllib_society.training import train

pytestmark = pytest.mark.learning


def train_config(tmp_path, path, **overrides):
    config = load_config(path, {"output": str(tmp_path / "run"), "seed": 0, **overrides})
    return train(config)


def test_bandit_bids_rank_the_arms(ray_session, tmp_path):
    # 20k steps: the society picks the best arm and its bids rank all four arms by value (random
    # bids would rank them right 1 time in 24). Exact values for every arm are not reached yet:
    # a low arm's bid is pinned only in the rare auctions against its own twin (see README).
    summary = train_config(tmp_path, "configs/bandit.yaml", stop_timesteps=20_000)
    bids = [summary["mean_bids"]["0"][f"p{k}"] for k in range(4)]
    # Runs are not bit-reproducible; over five measured runs the worst arm was 0.113 off.
    assert bids == sorted(bids), f"bids should rise with the arm's value 0.2..0.8: {bids}"
    errors = [abs(bid - (k + 1) / 5) for k, bid in enumerate(bids)]
    assert max(errors) <= 0.15, f"|bid - value| per arm {errors} (tolerance 0.15)"
    assert summary["greedy_return"] == pytest.approx(0.8)


def test_chain_walks_right_with_bids_near_q_star(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/chain.yaml")
    assert summary["greedy_return"] == pytest.approx(0.8) and summary["greedy_length"] == 5
    assert summary["bid_error"] <= 0.05, f"bid error {summary['bid_error']:.4f} (tolerance 0.05)"


def test_duality_finds_the_alternation(ray_session, tmp_path):
    summary = train_config(tmp_path, "configs/duality.yaml")
    assert summary["greedy_return"] == pytest.approx(5.0), summary["mean_bids"]
