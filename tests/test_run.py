"""run.py end to end with a tiny budget: every output it promises, read back, and resuming."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import ROOT, read_scalars, run_script


def run(*args, timeout=300):
    return run_script("run.py", *args, timeout=timeout)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    # 3 iterations of 400 env steps, the 2nd evaluated greedily by the callback, the 3rd (the
    # last) from the final checkpoint.
    output = tmp_path_factory.mktemp("run") / "chain"
    done = run("--stop-timesteps", "1200", "--output", str(output), "--set", "eval_episodes=1",
               "--set", "eval_interval=2")
    assert done.returncode == 0, done.stderr[-3000:]
    return output, done.stdout


def test_progress_lines_and_results_table(short_run):
    _, stdout = short_run
    assert "iter    1 | env_steps" in stdout and "| wins p0" in stdout
    shares = re.findall(r"\| +(\d+)% done, ETA (\S+)", stdout)  # the share of the 1,200-step budget
    assert shares and shares[0][0] == "33" and shares[-1] == ("100", "0s"), shares
    assert "greedy      - |" in stdout.split("iter    2")[0]  # iteration 1: not evaluated
    assert "bid error vs Q*" in stdout and "summary:" in stdout


def test_summary_json_has_the_promised_keys(short_run):
    output, _ = short_run
    summary = json.loads((output / "summary.json").read_text())
    for key in ("env", "auction", "clones", "env_steps", "train_return_mean", "greedy_return",
                "mean_bids", "q_star", "bid_error"):
        assert key in summary, key
    assert (summary["env"], summary["auction"], summary["clones"]) == ("Chain-v0", "ccv", 2)
    assert summary["env_steps"] >= 1200
    assert set(summary["mean_bids"]["0"]) == {"p0", "p1"}
    assert summary["q_star"]["4"]["p1"] == pytest.approx(0.8)
    bids, q = summary["mean_bids"], summary["q_star"]
    assert summary["bid_error"] <= max(abs(bids[s][p] - q[s][p]) for s in bids for p in bids[s]) + 1e-9


def test_csv_tensorboard_checkpoint_and_plot(short_run):
    output, _ = short_run
    progress = pd.read_csv(output / "progress.csv")
    assert len(progress) == 3
    assert {"society/greedy_return", "society/bid_error", "env_runners/society/env_return",
            "env_runners/society/win_freq/p1", "society/greedy_bid/s0/p1"} <= set(progress.columns)
    # eval_interval 2: iteration 2, and the last from the final checkpoint (not in TensorBoard).
    assert progress["society/bid_error_all"].notna().tolist() == [False, True, True]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["bid_error_all"] == pytest.approx(progress["society/bid_error_all"].iloc[-1])
    scalars = read_scalars(output / "trial")
    assert len(scalars["ray/tune/society/bid_error"]) == 1
    assert "ray/tune/env_runners/society/mean_bid/p0" in scalars
    # RLlib's own per-module learner metrics, one module per primitive, beside the society's.
    assert {"ray/tune/learners/p0/policy_loss", "ray/tune/learners/p1/entropy"} <= set(scalars)
    checkpoints = list((output / "trial").glob("checkpoint_*"))
    assert checkpoints and (checkpoints[0] / "algorithm_state.pkl").is_file()
    modules = checkpoints[0] / "learner_group" / "learner" / "rl_module"
    assert sorted(p.name for p in modules.iterdir() if p.is_dir()) == ["p0", "p1"]
    assert (output / "bids.png").stat().st_size > 10_000


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    output = tmp_path / "interrupted"
    args = ["--stop-timesteps", "6000", "--output", str(output), "--set", "checkpoint_frequency=1"]
    process = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    progress_file = output / "trial" / "progress.csv"  # Tune's, written live
    deadline = time.time() + 240
    while time.time() < deadline and not (progress_file.exists() and len(progress_file.read_text().splitlines()) > 4):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment state and stops
    process.wait(timeout=120)
    interrupted_at = len(progress_file.read_text().splitlines()) - 1
    assert 3 <= interrupted_at < 15  # 6000 steps take 15 iterations

    done = run("--output", str(output), "--resume")  # the run's own config.yaml, not new flags
    assert done.returncode == 0, done.stderr[-3000:]
    iterations = pd.read_csv(output / "progress.csv")["training_iteration"].tolist()
    assert iterations == list(range(1, len(iterations) + 1)) and len(iterations) >= 15
    results = (output / "trial" / "result.json").read_text().count('"training_iteration": 1,')
    assert results == 1  # continued from a checkpoint, not restarted from iteration 1
    summary = json.loads((output / "summary.json").read_text())
    assert summary["env_steps"] >= 6000


def test_resume_needs_a_run_folder(tmp_path):
    done = run("--resume", "--output", str(tmp_path / "nothing_here"))
    assert done.returncode == 2 and "config.yaml does not exist" in done.stderr


def test_existing_output_is_not_overwritten(short_run):
    output, _ = short_run
    done = run("--stop-timesteps", "800", "--output", str(output))
    assert done.returncode != 0 and "not empty" in done.stderr


def test_a_greedy_episode_that_never_ends_is_cut_and_training_goes_on(tmp_path):
    # Endless-v0 never ends and has no time limit: each greedy episode is cut at eval_max_steps.
    output = tmp_path / "endless"
    done = run("--env", "tests.endless_env:Endless-v0", "--stop-timesteps", "800", "--output", str(output),
               "--set", "eval_episodes=2", "--set", "eval_max_steps=30",
               "--set", "value_range=[0, 10]")  # 0.1 a step at most, forever: returns below 10
    assert done.returncode == 0, done.stderr[-3000:]
    assert "greedy timeouts 2" in done.stdout
    summary = json.loads((output / "summary.json").read_text())
    assert summary["env_steps"] >= 800 and summary["iterations"] == 2
    assert (summary["greedy_timeouts"], summary["greedy_length"], summary["eval_failed"]) == (2, 30, 0)
    assert "did not end within 30 env steps" in done.stdout + done.stderr


def test_evaluate_run_judges_the_last_checkpoint_as_training_did(short_run):
    # One episode on the run's seed is the final iteration's greedy evaluation, re-run from disk.
    output, _ = short_run
    done = run_script("-m", "experiments.evaluate_run", str(output), "--episodes", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluation = json.loads(done.stdout)
    summary = json.loads((output / "summary.json").read_text())
    assert (evaluation["episodes"], evaluation["algo"]) == (1, "society")
    for key in ("greedy_return", "greedy_length", "bid_error"):
        assert evaluation[key] == pytest.approx(summary[key]), key
    assert run_script("-m", "experiments.evaluate_run", str(output.parent / "nothing")).returncode == 2
