"""Joining a cluster: the same society, its env runners spread over an existing Ray cluster.

How to run this script
----------------------
Start a cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on the
others), then ``python examples/join_cluster.py --address HEAD:6379 --num-env-runners 4``. Without
``--address`` it starts a local Ray. Env ids must import in every process: ``envs:Chain-v0``
imports this project's ``envs`` package on each node (install it there: ``pip install .``).

Results to expect
-----------------
The nodes of the cluster, then one line per iteration; each env runner reports the node it runs
on (``env runner 1 on 10.0.0.2`` ...).
"""

import argparse

import ray

from rllib_society import SocietyPPOConfig

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", help="HOST:PORT of a running cluster (default: a local Ray)")
    parser.add_argument("--num-env-runners", type=int, default=2)
    parser.add_argument("--stop-iters", type=int, default=5)
    args = parser.parse_args()

    ray.init(address=args.address)
    print("nodes:", [node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]])
    config = (
        SocietyPPOConfig()
        .society(env="envs:Chain-v0", auction="ccv", clones=2)
        .env_runners(num_env_runners=args.num_env_runners, num_cpus_per_env_runner=0.5)
        .training(lr=1e-2, train_batch_size_per_learner=400, minibatch_size=128)
    )
    algo = config.build_algo()
    nodes = algo.env_runner_group.foreach_env_runner(lambda runner: ray.util.get_node_ip_address(),
                                                     local_env_runner=False)
    for index, node in enumerate(nodes, start=1):
        print(f"env runner {index} on {node}")
    for iteration in range(args.stop_iters):
        result = algo.train()
        print(f"iteration {iteration}: {result['num_env_steps_sampled_lifetime']:,.0f} env steps, "
              f"env return {result['env_runners']['society']['env_return']:.2f}")
    algo.stop()
    ray.shutdown()
