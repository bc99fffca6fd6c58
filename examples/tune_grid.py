"""A Tune search from Python: auctions x society sizes, each trial its own society.

How to run this script
----------------------
``python examples/tune_grid.py --stop-iters 10``

Each trial builds a `SocietyPPOConfig` from its point of the grid (the auction and Chain's number
of actions, i.e. primitives) and reports after every iteration; Tune runs as many trials at once
as Ray has CPUs for. TensorBoard: ``tensorboard --logdir <the printed folder>``.

Results to expect
-----------------
One line per trial: the mean env return of its last training episodes (Chain's optimum is 0.8) and env steps.
"""

import argparse
import tempfile

from ray import tune

from rllib_society import SocietyPPOConfig


def train_society(params: dict) -> None:
    config = (
        SocietyPPOConfig()
        .society(env="envs:Chain-v0", env_config={"num_actions": params["primitives"]},
                 auction=params["auction"], clones=2)
        .env_runners(num_env_runners=0)  # samples in the trial's own process (its 1 CPU)
        .training(lr=1e-2, train_batch_size_per_learner=400, minibatch_size=128)
    )
    algo = config.build_algo()
    for _ in range(params["iterations"]):
        result = algo.train()
        tune.report({"return": result["env_runners"]["society"]["env_return"],
                     "env_steps": result["num_env_steps_sampled_lifetime"]})
    algo.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--stop-iters", type=int, default=10)
    parser.add_argument("--output", default=tempfile.mkdtemp(prefix="tune-grid-"))
    args = parser.parse_args()

    tuner = tune.Tuner(
        tune.with_resources(train_society, {"cpu": 1}),
        param_space={"auction": tune.grid_search(["ccv", "env"]), "primitives": tune.grid_search([2, 4]),
                     "iterations": args.stop_iters},
        run_config=tune.RunConfig(storage_path=args.output, name="societies", verbose=0),
    )
    results = tuner.fit()
    print(f"trials in {args.output}/societies")
    for result in results:
        if result.error:
            print(f"trial {result.path} failed: {result.error}")
            continue
        params = result.config
        print(f"auction {params['auction']:4s} primitives {params['primitives']}: "
              f"return {result.metrics['return']:.2f} after {result.metrics['env_steps']:,.0f} env steps")
