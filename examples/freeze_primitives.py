"""Freezing pre-trained primitives: a new primitive joins a trained society and learns alone.

How to run this script
----------------------
``python examples/freeze_primitives.py --stop-iters 10``

1. A society of Left and Right (Chain with 2 actions) learns to walk right, and is saved.
2. A society of 3 primitives (a third, useless action: stay) starts from that checkpoint's
   p0 and p1, frozen with RLlib's ``policies_to_train``; only the new p2 trains.

Results to expect
-----------------
p0 and p1 end with exactly the weights they were restored with; p2's weights moved. Bids per
Chain state of all three primitives are printed at the end.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from rllib_society import MODULES_SUBDIR, SocietyPPOConfig, greedy_bids


def society(actions: int, iterations: int, frozen_from: str | None = None):
    config = (
        SocietyPPOConfig()
        .society(env="envs:Chain-v0", env_config={"num_actions": actions}, auction="ccv", clones=2)
        .training(lr=1e-2, train_batch_size_per_learner=400, minibatch_size=128)
    )
    if frozen_from:
        config = config.multi_agent(policies_to_train=["p2"])
    algo = config.build_algo()
    if frozen_from:
        for module_id in ("p0", "p1"):  # restore just these modules, in the learner and the runners
            component = f"{MODULES_SUBDIR}/{module_id}"
            algo.restore_from_path(Path(frozen_from, component), component=component)
    before = algo.learner_group.get_weights()  # {module id: {name: array}}, copies
    for _ in range(iterations):
        algo.train()
    return algo, before


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop-iters", type=int, default=10)
    args = parser.parse_args()

    pretrained, _ = society(actions=2, iterations=args.stop_iters)
    checkpoint = pretrained.save_to_path(tempfile.mkdtemp())
    trained = pretrained.learner_group.get_weights()
    pretrained.stop()

    algo, restored = society(actions=3, iterations=args.stop_iters, frozen_from=checkpoint)
    for module_id, state in trained.items():  # p0 and p1 started from the pre-trained weights
        assert all((restored[module_id][k] == v).all() for k, v in state.items()), module_id
    for module_id, state in sorted(restored.items()):
        now = algo.learner_group.get_weights()[module_id]
        moved = max(float(abs(now[k] - v).max()) for k, v in state.items())
        print(f"{module_id}: largest weight change {moved:.6f}" + ("" if module_id == "p2" else " (frozen)"))
        assert (moved == 0.0) == (module_id != "p2"), module_id
    bids = greedy_bids({m: algo.get_module(m) for m in ("p0", "p1", "p2")}, np.eye(7, dtype=np.float32)[:5])
    for state, row in enumerate(bids):
        print(f"state {state}: Left {row[0]:.2f}  Right {row[1]:.2f}  Stay {row[2]:.2f}")
    algo.stop()
