"""Row identities (`rllib_society.rows`): entries, the multiset comparison against a naive oracle,
and the ledger files."""

from collections import Counter

import numpy as np
import pytest

from rllib_society.rows import RowEntry, RowLedger, compare_rows, entries_of, read_ledger


def naive_rows(entries) -> Counter:
    """The oracle: every (episode, step, bidder) of the entries, counted one by one."""
    rows = Counter()
    for entry in entries:
        for step in range(entry.first, entry.stop):
            for bidder, active in enumerate(entry.bidders):
                if active:
                    rows[(entry.episode, step, bidder)] += 1
    return rows


def random_entries(rng, episodes=6, bidders=5):
    entries = []
    for e in range(episodes):
        start = int(rng.integers(0, 4))
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.integers(1, 5))
            entries.append(RowEntry(f"ep{e}", start, start + length, rng.random(bidders) < 0.7))
            start += length
    return entries


def test_entries_split_where_the_bidders_change_and_skip_empty_steps():
    bidders = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    entries = entries_of("e", np.arange(3, 8), bidders)
    assert [(e.first, e.stop, e.bidders.tolist()) for e in entries] == [
        (3, 5, [True, True, False]), (6, 8, [True, False, False])]
    assert naive_rows(entries) == Counter({("e", t, b): 1 for t in range(3, 8) for b in range(3) if bidders[t - 3, b]})
    with pytest.raises(ValueError, match="non-consecutive"):
        entries_of("e", np.array([0, 2]), np.ones((2, 1), dtype=bool))


@pytest.mark.parametrize("seed", range(5))
def test_the_comparison_counts_what_the_naive_oracle_counts(seed):
    rng = np.random.default_rng(seed)
    sampled = random_entries(rng)
    trained = list(sampled)
    assert compare_rows(sampled, trained) == {"rows": sum(naive_rows(sampled).values()), "duplicated": 0, "lost": 0,
                                              "unsampled": 0}
    lost, twice = trained.pop(int(rng.integers(len(trained)))), trained[0]
    trained += [twice, RowEntry("new", 0, 2, np.ones(5, dtype=bool))]
    want, have = naive_rows(sampled), naive_rows(trained)
    result = compare_rows(sampled, trained)
    assert result["lost"] == sum(1 for row in want if row not in have) and result["lost"] >= lost.num_rows() > 0
    assert result["duplicated"] == sum(n - 1 for n in have.values() if n > 1) == twice.num_rows()
    assert result["unsampled"] == sum(1 for row in have if row not in want) == 10


def test_the_ledger_reads_back_what_it_wrote_and_skips_a_line_cut_by_a_kill(tmp_path):
    rng = np.random.default_rng(0)
    ledger = RowLedger(tmp_path, "sampled")
    first, second = random_entries(rng), random_entries(rng, bidders=1030)
    ledger.record(first)
    ledger.record(second)
    with ledger.path.open("a") as file:
        file.write("3,17.5,ep9,0,4,ff/3\n4,18.5,ep9,0,")  # kills mid-line: one cut where its bidders could parse
    rows = read_ledger(ledger.path)
    assert [row["call"] for row in rows] == [1] * len(first) + [2] * len(second)
    for row, entry in zip(rows, first + second):
        assert row["entry"].episode == entry.episode and (row["entry"].first, row["entry"].stop) == (entry.first, entry.stop)
        np.testing.assert_array_equal(row["entry"].bidders, entry.bidders)
