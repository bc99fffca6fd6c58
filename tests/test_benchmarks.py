"""The throughput benchmark's measuring order (benchmarks/throughput.py)."""

from benchmarks.throughput import rotated


def test_each_round_starts_one_algorithm_further_along():
    names = ["fast", "scored 0.15", "scored 0.3", "single-agent"]
    orders = [rotated(names, r) for r in range(8)]
    assert all(sorted(order) == sorted(names) for order in orders)
    for position in range(len(names)):  # over 4 rounds every algorithm takes every position once
        assert {order[position] for order in orders[:4]} == set(names)
    assert orders[4] == orders[0] == names
