"""`experiments.seed_table`: the results docs' rows, from fake run folders."""

import json

import pytest
import yaml

from experiments.seed_table import main


def fake_run(folder, seed, greedy, bid_error_all, steps_to_target, target=0.8):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"target_return": target}))
    (folder / "summary.json").write_text(json.dumps({
        "seed": seed, "greedy_return": greedy, "bid_error": 0.04, "bid_error_all": bid_error_all,
        "steps_to_target": steps_to_target, "env_steps": 1000, "wall_seconds": 10.0 + seed}))


def test_one_row_per_setting_with_medians_maxima_and_counts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for seed, (greedy, error, steps) in enumerate([(0.8, 0.1, 400), (0.8, 0.3, 800), (0.0, 0.2, None)]):
        fake_run(tmp_path / "runs" / "a" / f"seed{seed}", seed, greedy, error, steps)
    fake_run(tmp_path / "runs" / "b" / "seed0", 0, 0.8, 0.05, 200)
    assert main(["--group", "a=runs/a/seed*", "--group", "b=runs/b/seed*", "--csv", "out/runs.csv"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| a") or line.startswith("| b")]
    assert rows[0] == "| a | 3 | 0.533 | 2 of 3 | 0.040 (0.040) | 0.200 (0.300) | 600 (2 of 3) | 11 |"
    assert rows[1] == "| b | 1 | 0.800 | 1 of 1 | 0.040 (0.040) | 0.050 (0.050) | 200 | 10 |"
    csv = (tmp_path / "out" / "runs.csv").read_text().splitlines()
    assert len(csv) == 5 and csv[1].startswith("a,runs/a/seed0,")  # relative run folders, no machine paths


def test_a_glob_without_runs_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["--group", "a=runs/none/seed*"])
