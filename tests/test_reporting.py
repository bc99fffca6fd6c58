"""The progress line a run prints per iteration, its results table and its bid plot."""

import re

from experiments.reporting import PROGRESS_PRIMITIVES, progress_line


def test_a_big_societys_progress_line_shows_the_primitives_that_win_most():
    n = 100
    wins = {f"p{k}": k / 10_000 for k in range(n)}  # p99 wins most
    result = {"training_iteration": 1, "env_runners": {"society": {
        "win_freq": wins, "mean_bid": {p: 0.5 for p in wins}}}}
    line = progress_line(result)
    shown = re.findall(r"(p\d+) \d\.\d\d", line.split("| wins ")[1].split(" |")[0])
    assert shown == [f"p{k}" for k in range(n - 1, n - 1 - PROGRESS_PRIMITIVES, -1)]
    assert f"(+{n - PROGRESS_PRIMITIVES} more)" in line
    assert "| wins p0 0.50 p1 0.30 | bids p0" in progress_line(
        {"env_runners": {"society": {"win_freq": {"p0": 0.5, "p1": 0.3}, "mean_bid": {"p0": 0.1, "p1": 0.2}}}})


def test_progress_survives_a_record_cut_by_a_killed_driver(tmp_path, caplog):
    import json

    from experiments.reporting import read_progress

    records = [{"training_iteration": i, "env_runners": {"x": {"y": i}}} for i in (1, 2, 3)]
    cut = json.dumps(records[1])[:-9]  # the killed driver's record, no newline; the restore redoes iteration 2
    path = tmp_path / "result.json"
    path.write_text(json.dumps(records[0]) + "\n" + cut + json.dumps(records[1]) + "\n" + json.dumps(records[2]) + "\n")
    progress = read_progress(path)
    assert progress["training_iteration"].tolist() == [1, 2, 3] and progress["env_runners/x/y"].tolist() == [1, 2, 3]
    assert "skipped 1 result record(s) cut short" in caplog.text


def test_an_iteration_in_which_no_episode_ended_shows_a_dash_not_nan():
    line = progress_line({"training_iteration": 3, "num_env_steps_sampled_lifetime": 1200,
                          "env_runners": {"society": {"env_return": float("nan")}}})
    assert "return      - | greedy      -" in line and "nan" not in line
    assert "return -201.125" in progress_line({"env_runners": {"society": {"env_return": -201.125}}})


def test_the_progress_line_times_with_the_wall_clock_from_where_the_run_started(monkeypatch):
    # A resumed run's first result counts its checkpoint's steps; the pace uses only new ones.
    from experiments import reporting

    now = [1000.0]
    monkeypatch.setattr(reporting.time, "time", lambda: now[0])
    clock = reporting.WallClock()
    result = lambda steps: {"num_env_steps_sampled_lifetime": steps, "time_total_s": 1.0,  # noqa: E731
                            "env_runners": {"num_env_steps_sampled": 400}}
    now[0] += 10.0
    assert "|   10.0 s |  50% done, ETA 2m15s" in reporting.progress_line(result(5400), 10800, clock)
    now[0] += 10.0  # 600 new steps in 20 s: 5,200 left take 173 s
    assert "|   20.0 s |  52% done, ETA 2m53s" in reporting.progress_line(result(5600), 10800, clock)


def test_a_big_societys_results_table_shows_each_states_highest_bids():
    from experiments.reporting import results_table

    bids = {f"p{k}": k / 100 for k in range(20)}
    summary = {"env": "Chain-v0", "auction": "ccv", "clones": 2, "env_steps": 400, "wall_seconds": 1.0,
               "train_return_mean": 0.0, "greedy_return": 0.0, "greedy_length": 5.0}
    table = results_table({**summary, "mean_bids": {0: bids}, "q_star": {0: {"p19": 0.2}}})
    assert "s0: p19 0.190 [0.200]  p18 0.180" in table and "(+12 more in summary.json)" in table
    assert "p11 0.110" not in table


def test_the_baselines_results_table_has_no_auction_rows():
    from experiments.reporting import results_table

    summary = {"env": "Taxi-v3", "algo": "monolithic", "auction": "ccv", "clones": 2, "env_steps": 400,
               "wall_seconds": 1.0, "train_return_mean": -200.0, "greedy_return": -200.0, "greedy_length": 200.0,
               "bid_error": None}
    table = results_table(summary)
    assert "algo                         monolithic" in table
    assert "auction" not in table and "bid error" not in table


def test_the_bid_plot_spans_bids_and_q_star_in_env_units_whatever_the_value_range(tmp_path):
    import numpy as np
    import pandas as pd

    from experiments.reporting import ENV_STEPS, bid_plot_limits, plot_bids

    # CliffWalking-like bids (env units, far outside [0, 1]) and their Q* lines.
    bids = np.array([[-30.0, -20.0, -15.0], [-14.0, -13.5, -13.0]])
    q_values = np.array([[-12.0, -110.0]])
    lo, hi = bid_plot_limits(bids, q_values)
    assert lo < -110.0 and -12.0 < hi < 0.0
    lo, hi = bid_plot_limits(np.array([[0.5, 0.5]]), None)  # flat bids still get a visible scale
    assert lo < 0.5 < hi

    progress = pd.DataFrame({ENV_STEPS: [400, 800, 1200], "society/greedy_bid/s0/p0": bids[0],
                             "society/greedy_bid/s0/p1": bids[1]})
    assert plot_bids(progress, q_values, tmp_path / "bids.png", "CliffWalking") == [0]
    assert (tmp_path / "bids.png").stat().st_size > 0


def test_the_bid_plot_of_many_states_draws_those_furthest_from_q_star(tmp_path):
    import numpy as np
    import pandas as pd

    from experiments.reporting import ENV_STEPS, plot_bids

    rng = np.random.default_rng(0)
    q_values = rng.uniform(-10, 10, size=(30, 2))
    q_values[7] = 0.0  # a terminal state: never drawn
    final = q_values + rng.normal(0, 1, size=q_values.shape)
    columns = {f"society/greedy_bid/s{s}/p{k}": [np.nan, final[s, k] + 5, np.nan, final[s, k]]
               for s in range(30) for k in range(2)}  # evaluated every other iteration
    progress = pd.DataFrame({ENV_STEPS: [400, 800, 1200, 1600], **columns})
    error = {s: max(abs(final[s, k] - q_values[s, k]) for k in range(2)) for s in range(30) if s != 7}
    furthest = sorted(sorted(error, key=error.get, reverse=True)[:5])
    assert plot_bids(progress, q_values, tmp_path / "bids.png", "many", max_states=5) == furthest
    without_q = plot_bids(progress, None, tmp_path / "bids_no_q.png", "many", max_states=5)
    assert without_q == [0, 1, 2, 3, 4]


def test_the_summary_sums_the_exploration_metrics_over_the_run():
    """Each iteration logs the sums over the episodes that ended in it; iterations in which none
    ended log nothing (NaN), and count 0 in the run's totals."""
    import pandas as pd

    from experiments.reporting import exploration_totals

    progress = pd.DataFrame({"env_runners/society/exploration_auctions": [3.0, float("nan"), 4.0],
                             "env_runners/society/bonus_paid": [0.5, 0.25, float("nan")]})
    assert exploration_totals(progress) == {"exploration_auctions": 7.0, "bonus_paid": 0.75}
