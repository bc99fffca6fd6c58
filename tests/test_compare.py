"""Comparing finished runs: curves against env steps (options' steps included) and the steps
each run needed to reach a target and stay there."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.compare import main
from experiments.reporting import EPISODE_ENV_STEPS


def write_run(folder, steps, values):
    folder.mkdir()
    pd.DataFrame({EPISODE_ENV_STEPS: steps, "society/greedy_success": values}).to_csv(
        folder / "progress.csv", index=False)
    return str(folder)


def test_steps_to_target_per_run_and_a_plot(tmp_path, capsys):
    fast = write_run(tmp_path / "fast", [100, 200, 300, 400], [0.2, 0.95, 0.9, 1.0])
    dips = write_run(tmp_path / "dips", [100, 200, 300, 400], [0.95, 0.5, 0.92, 0.97])
    never = write_run(tmp_path / "never", [150, 300, 450], [0.1, 0.95, 0.6])
    output = tmp_path / "curves.png"
    assert main(["--group", f"society={fast},{dips}", "--group", f"flat={never}",
                 "--target", "0.9", "--output", str(output)]) == 0
    table = pd.read_csv(output.with_suffix(".csv"))
    by_run = dict(zip(table["run"], table["steps_to_target"]))
    assert by_run[fast] == 200      # reached at 200 and stayed
    assert by_run[dips] == 300      # the dip at 200 resets it
    assert pd.isna(by_run[never])   # ended below the target
    assert list(table["env_steps"]) == [400, 400, 450]
    assert output.stat().st_size > 0


def test_a_group_without_progress_is_named(tmp_path):
    with pytest.raises(SystemExit):
        main(["--group", f"x={tmp_path}", "--output", str(tmp_path / "c.png")])


def test_runs_evaluated_every_other_iteration_are_judged_on_their_evaluations(tmp_path):
    nan = float("nan")
    held = write_run(tmp_path / "held", [100, 200, 300, 400, 500], [nan, 0.95, nan, 0.92, 0.97])
    dips = write_run(tmp_path / "dips", [100, 200, 300, 400, 500], [0.95, nan, 0.5, nan, 0.97])
    output = tmp_path / "curves.png"
    assert main(["--group", f"society={held},{dips}", "--target", "0.9", "--output", str(output)]) == 0
    table = pd.read_csv(output.with_suffix(".csv"))
    assert dict(zip(table["run"], table["steps_to_target"])) == {held: 200, dips: 500}
    assert list(table["final"]) == [0.97, 0.97]
