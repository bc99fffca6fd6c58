"""Running on a Ray cluster: a real `ray start --head` node joined with --address, two nodes from
Ray's own cluster utilities with env runners on both, and an env runner killed mid-training."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from rllib_society.env_runner import SocietyEnvRunner


ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="ignore"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def script(name, *args, timeout=600):
    return subprocess.run([sys.executable, name, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def head_node():
    """`ray start --head` on 127.0.0.1 and a free port, in its own temp dir; stopped afterwards by
    SIGTERM to the blocking `ray start`, which takes its processes down with it."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: Ray's socket paths are limited
    node = subprocess.Popen(
        [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 90
    while subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, env=ENV).returncode:
        assert time.time() < deadline and node.poll() is None, "the head node did not come up"
        time.sleep(1)
    yield address, Path(temp_dir)
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=60)
    deadline = time.time() + 30
    while processes_mentioning(temp_dir) and time.time() < deadline:
        time.sleep(1)
    assert not processes_mentioning(temp_dir), "Ray processes of the head node were left behind"
    shutil.rmtree(temp_dir, ignore_errors=True)


def worker_logs_mentioning(temp_dir: Path, text: str) -> list[Path]:
    logs = (temp_dir / "session_latest" / "logs").glob("worker-*")
    return [log for log in logs if text in log.read_text(errors="ignore")]


def test_run_py_trains_on_an_existing_cluster(head_node, tmp_path):
    address, temp_dir = head_node
    output, storage = tmp_path / "run", tmp_path / "shared"
    done = script("run.py", "--address", address, "--stop-timesteps", "800", "--output", str(output),
                  "--storage-path", str(storage))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["env_steps"] >= 800
    assert list((storage / "run" / "trial").glob("checkpoint_*"))  # trial folders in the storage path
    assert worker_logs_mentioning(temp_dir, "SocietyPPO")  # the trial ran on the head node's workers


def test_tune_search_runs_on_an_existing_cluster(head_node, tmp_path):
    address, _ = head_node
    output = tmp_path / "search"
    done = script("tune_search.py", "--address", address, "--auction", "ccv", "bb", "--stop-timesteps", "800",
                  "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(output / "results.csv")
    assert len(table) == 2 and set(table["status"]) == {"TERMINATED"}


def test_the_join_cluster_example_runs_on_an_existing_cluster(head_node):
    address, temp_dir = head_node
    done = script("examples/join_cluster.py", "--address", address, "--stop-iters", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "env runner 2 on " in done.stdout and "iteration 0:" in done.stdout, done.stdout
    assert worker_logs_mentioning(temp_dir, "SocietyEnvRunner")  # its runners ran on the head node


TWO_NODES = """
import json, ray
from ray.cluster_utils import Cluster
from experiments.algo_config import build_algo_config
from experiments.config_files import load_config

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address)
config = load_config("configs/chain.yaml", {"num_env_runners": 2, "num_envs_per_env_runner": 2})
algo = build_algo_config(config).build_algo()
runner_nodes = algo.env_runner_group.foreach_env_runner(
    lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False)
steps = algo.train()["num_env_steps_sampled_lifetime"]
print(json.dumps({"runner_nodes": runner_nodes, "nodes": [n["NodeID"] for n in ray.nodes()], "steps": steps}))
algo.stop()
ray.shutdown()
cluster.shutdown()
"""


def test_env_runners_spread_over_two_nodes():
    done = subprocess.run([sys.executable, "-c", TWO_NODES], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(set(report["nodes"])) == 2
    assert sorted(set(report["runner_nodes"])) == sorted(set(report["nodes"]))  # one runner per node
    assert report["steps"] >= 400


def test_a_killed_env_runner_is_restarted_and_training_finishes(tmp_path):
    output = tmp_path / "fault"
    budget = 6000
    process = subprocess.Popen(
        [sys.executable, "run.py", "--stop-timesteps", str(budget), "--output", str(output),
         "--num-env-runners", "2", "--set", "num_cpus_per_env_runner=0.5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
    )
    killed = None
    for line in process.stdout:  # one line per iteration
        if line.startswith("iter    3"):
            runners = processes_mentioning(f"ray::{SocietyEnvRunner.__name__}")
            assert runners, "no env runner process found"
            killed = runners[0]
            os.kill(killed, signal.SIGKILL)
    assert process.wait(timeout=300) == 0 and killed is not None
    summary = json.loads((output / "summary.json").read_text())
    assert summary["env_steps"] >= budget  # the full budget despite the dead runner
    progress = pd.read_csv(output / "progress.csv")
    assert progress["fault_tolerance/num_remote_worker_restarts"].iloc[-1] >= 1
    assert progress["fault_tolerance/num_healthy_workers"].iloc[-1] == 2
