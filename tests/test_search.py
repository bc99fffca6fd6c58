"""tune_search.py: the grid and its validation (no Ray), a tiny search end to end with every
output read back, a failing trial, and an interrupted search resumed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import ROOT, read_scalars, run_script

from experiments.config_files import load_config
from experiments.grid import expand_grid, parse_grid, trial_name
from experiments.search_results import RESULT_COLUMNS, trial_wall_seconds

TINY = ["--stop-timesteps", "1200", "--set", "train_batch_size_per_learner=400"]


def search_cli(*args, timeout=600):
    return run_script("tune_search.py", *args, timeout=timeout)


# --- the grid, without Ray -------------------------------------------------------------------

def test_a_trials_wall_seconds_count_the_time_between_its_results(tmp_path):
    # Tune's time_total_s (3 s here) leaves out what ran between iterations: the evaluation.
    records = [{"training_iteration": k + 1, "timestamp": 100 + 10 * k, "time_this_iter_s": 1.0,
                "time_total_s": k + 1.0} for k in range(3)]
    (tmp_path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert trial_wall_seconds(tmp_path / "result.json") == 21.0


def test_grid_values_are_parsed_as_yaml():
    grid = parse_grid(["lr=1e-3,3e-4", "fcnet_hiddens=[16],[32, 32]", "env_config.is_slippery=true,false"])
    assert grid == {"lr": [1e-3, 3e-4], "fcnet_hiddens": [[16], [32, 32]],
                    "env_config.is_slippery": [True, False]}


def test_every_trial_gets_its_own_seed_and_name():
    base = load_config("configs/chain.yaml", {"seed": 10})
    trials = expand_grid(base, {"auction": ["v", "ccv"], "clones": [1, 2]}, num_samples=3)
    assert len(trials) == 12
    assert sorted(t.seed for t in trials) == list(range(10, 22))
    assert {(t.auction, t.clones) for t in trials} == {(a, c) for a in ("v", "ccv") for c in (1, 2)}
    names = {trial_name(t, ["auction", "clones"]) for t in trials}
    assert len(names) == 12 and "auction=v_clones=1_seed=10" in names
    assert all(t.lr == base.lr for t in trials)  # the YAML's other keys are kept


def test_env_config_keys_can_be_varied():
    base = load_config(None, {"env": "FrozenLake-v1"})
    trials = expand_grid(base, {"env_config.is_slippery": [True, False]}, num_samples=1)
    assert [t.env_config for t in trials] == [{"is_slippery": True}, {"is_slippery": False}]


def test_rllib_settings_can_be_varied():
    trials = expand_grid(load_config(None, {}), {"rllib.kl_coeff": [0.0, 0.2]}, num_samples=1)
    assert [t.rllib for t in trials] == [{"kl_coeff": 0.0}, {"kl_coeff": 0.2}]
    assert [trial_name(t, ["rllib.kl_coeff"]) for t in trials] == ["kl_coeff=0.0_seed=0", "kl_coeff=0.2_seed=1"]


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"auction": ["ccv", "vcg"]}, r"auction='vcg'.*one of v, ccv, bb, env"),
        ({"clones": [2, 0]}, r"clones=0.*an integer >= 1"),
        ({"learning_rate": [1e-3]}, r"unknown config key 'learning_rate'"),
        ({"env_config.size": [3]}, r"env_config=\{'size': 3\} is not allowed; env_config must be the arguments of env 'Chain-v0'"),
        ({"stop_timesteps": [100, 200]}, r"stop_timesteps is the same for every trial"),
        ({"lr": []}, r"give at least one value"),
        ({"rllib.kl_coef": [0.1]}, r"rllib.kl_coef is not a setting of RLlib's PPOConfig. Did you mean kl_coeff"),
    ],
)
def test_bad_grid_values_are_named(grid, message):
    with pytest.raises(ValueError, match=message):
        expand_grid(load_config("configs/chain.yaml"), grid, num_samples=1)


@pytest.mark.integration
@pytest.mark.parametrize(
    "args, message",
    [
        (["--auction", "ccv", "vcg"], "invalid choice: 'vcg'"),
        (["--clones", "0", "2"], "clones=0 is not allowed"),
        (["--grid", "gamm=0.9,0.99"], "unknown config key 'gamm'. Did you mean gamma"),
        (["--grid", "lr"], "--grid expects key=value1,value2"),
        (["--max-concurrent-trials", "0"], "--max-concurrent-trials=0 is not allowed"),
        (["--resume", "--output", "/nonexistent/search"], "search.yaml does not exist"),
    ],
)
def test_cli_rejects_bad_input_before_ray_starts(tmp_path, args, message):
    done = search_cli(*args, *([] if "--output" in args else ["--output", str(tmp_path / "out")]))
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # nothing half-written


# --- searches --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    output = tmp_path_factory.mktemp("search") / "chain"
    done = search_cli("--auction", "v", "ccv", "--clones", "1", "2", "--output", str(output), *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return output, done.stdout


@pytest.mark.integration
def test_tiny_search_writes_one_row_per_trial(tiny_search):
    output, stdout = tiny_search
    table = pd.read_csv(output / "results.csv")
    assert list(table.columns) == RESULT_COLUMNS
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"}
    assert {(a, c) for a, c in zip(table["auction"], table["clones"])} == {
        ("v", 1), ("v", 2), ("ccv", 1), ("ccv", 2)}
    assert table["seed"].nunique() == 4
    assert (table["env_steps"] >= 1200).all() and (table["iterations"] == 3).all()
    # Chain's YAML bids at any scale, so a bid error (in value units) is not bounded by 1.
    assert (table["bid_error"] >= 0).all() and table["greedy_return"].notna().all()
    assert (table["best_return"] >= table["final_return"] - 1e-9).all()
    for row in table.itertuples():  # each trial's own summary agrees with its row
        summary = json.loads((Path(row.path) / "summary.json").read_text())
        assert (summary["auction"], summary["clones"], summary["seed"]) == (row.auction, row.clones, row.seed)
        assert summary["bid_error"] == pytest.approx(row.bid_error)
    assert stdout.count("finished auction=") == 4 and "| ccv | 2 | 1 | 0 |" in stdout
    assert "[4 done / 0 running / 0 pending of 4]  best so far: auction=" in stdout, stdout


@pytest.mark.integration
def test_tiny_search_tensorboard_shows_every_trial(tiny_search):
    output, _ = tiny_search
    table = pd.read_csv(output / "results.csv")
    for row in table.itertuples():
        scalars = read_scalars(Path(row.path))
        assert len(scalars["ray/tune/society/bid_error"]) == row.iterations
        assert scalars["ray/tune/society/bid_error"][-1] == pytest.approx(row.bid_error, abs=1e-6)
        assert len(scalars["ray/tune/env_runners/society/env_return"]) == row.iterations
        assert "ray/tune/env_runners/society/win_freq/p1" in scalars
        assert "ray/tune/env_runners/society/mean_bid/p0" in scalars


@pytest.mark.integration
def test_tiny_search_summary_and_plots(tiny_search):
    output, _ = tiny_search
    summary = (output / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "auction" not in line]
    assert len(rows) == 4  # v/ccv x 1/2 clones
    from matplotlib import colors, image

    for name in ("learning_curves.png", "bid_error.png"):
        pixels = image.imread(output / name)[..., :3].reshape(-1, 3)
        for color in ("C0", "C1"):  # one series per auction (ccv, v), in matplotlib's first colours
            target = colors.to_rgb(color)
            assert (abs(pixels - target).max(axis=1) < 0.02).sum() > 50, (name, color)


@pytest.mark.integration
def test_failed_trial_is_reported_and_others_finish(tmp_path):
    output = tmp_path / "failing"
    done = search_cli("--env", "tests.failing_env:FailingChain-v0", "--grid", "env_config.fail_after=null,50",
                      "--auction", "ccv", "--output", str(output), *TINY)
    assert done.returncode == 0, done.stderr[-3000:]  # not every trial failed
    table = pd.read_csv(output / "results.csv").set_index("env_config.fail_after", drop=False)
    assert table.loc[50, "status"] == "ERROR"
    assert "deliberate failure after 50 steps" in table.loc[50, "error"]
    ok = table[table["status"] == "TERMINATED"]
    assert len(ok) == 1 and ok["env_steps"].iloc[0] >= 1200
    assert "ERROR: auction=ccv_fail_after=50_seed=1:" in done.stdout


@pytest.mark.integration
def test_interrupted_search_resumes_without_rerunning_finished_trials(tmp_path):
    output = tmp_path / "interrupted"
    args = ["--auction", "v", "ccv", "bb", "--output", str(output), "--max-concurrent-trials", "1",
            "--stop-timesteps", "2000", "--set", "checkpoint_frequency=1"]
    process = subprocess.Popen([sys.executable, "tune_search.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def finished() -> list[Path]:
        return [p.parent for p in output.glob("*/result.json") if '"done": true' in p.read_text()]

    deadline = time.time() + 300
    while time.time() < deadline and not finished():
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment state and stops
    process.wait(timeout=120)
    first = finished()
    # The second trial (2,000 steps, a few seconds) may finish while Tune handles the signal.
    assert 1 <= len(first) < 3, "the search should stop after its first trial, before its last"
    interrupted = pd.read_csv(output / "results.csv")  # the partial table, marked as such
    assert len(interrupted) == 3 and (interrupted["status"] == "TERMINATED").sum() == len(first)
    assert set(interrupted["status"]) <= {"TERMINATED", "UNFINISHED", "PENDING"} and process.returncode == 130
    lines_before = {p: (p / "result.json").read_text() for p in first}

    done = search_cli("--resume", "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(output / "results.csv")
    assert len(table) == 3 and set(table["status"]) == {"TERMINATED"} and (table["env_steps"] >= 2000).all()
    for trial, text in lines_before.items():  # untouched: not rerun
        assert (trial / "result.json").read_text() == text
    assert done.stdout.count("started ") <= 3 - len(first)  # only the unfinished trials ran
    assert "pending of 3]" in done.stdout  # counts over the whole search, not Tune's lazy list
