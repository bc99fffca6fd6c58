"""Reading a checkpoint's primitives and plotting their bids.

How to run this script
----------------------
``python examples/plot_bids.py --checkpoint runs/<run>/trial/checkpoint_000000`` reads a saved
society (a run's, trial's or checkpoint folder); without ``--checkpoint`` it first trains a
Chain society for ``--stop-iters`` iterations and saves it.

Results to expect
-----------------
``bids.png``: each primitive's greedy (mean) bid in every Chain state, with Q* of the Right
action for comparison (0.768 ... 0.800); the mean bids are printed too.
"""

import argparse
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rllib_society import SocietyPPOConfig, greedy_bids, load_modules  # noqa: E402


def train_and_save(iterations: int) -> str:
    algo = (SocietyPPOConfig()
            .society(env="envs:Chain-v0", auction="ccv", clones=2)
            .training(lr=1e-2, train_batch_size_per_learner=400, minibatch_size=128)
            .build_algo())
    for _ in range(iterations):
        algo.train()
    path = algo.save_to_path(tempfile.mkdtemp())
    algo.stop()
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", help="a run, trial or checkpoint folder of a Chain society")
    parser.add_argument("--stop-iters", type=int, default=20)
    parser.add_argument("--output", default="bids.png")
    args = parser.parse_args()

    modules = load_modules(args.checkpoint or train_and_save(args.stop_iters))  # {"p0": ..., "p1": ...}
    states = np.eye(7, dtype=np.float32)[:5]  # Chain's one-hot states 0-4 (of 7), the goal left out
    bids = greedy_bids(modules, states)  # (states, primitives)
    for state, row in enumerate(bids):
        print(f"state {state}: " + "  ".join(f"{m} {b:.3f}" for m, b in zip(modules, row)))
    for k, module_id in enumerate(modules):
        plt.plot(range(5), bids[:, k], marker="o", label=f"{module_id} ({['Left', 'Right'][k] if k < 2 else k})")
    plt.plot(range(5), [0.99 ** (4 - s) * 0.8 for s in range(5)], "k--", label="Q*(s, Right)")
    plt.xlabel("Chain state")
    plt.ylabel("mean bid")
    plt.legend()
    plt.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")
