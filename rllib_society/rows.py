"""Row identities: which bid rows the fast path's env runners handed to a learner, and which rows
a learner trained on.

A row is one bidder's bid at one auction: (episode id, auction step, bidder), bidder
``k * clones + c`` being clone c of primitive k (agent ``p{k}_c{c}``). An entry is a run of
consecutive auctions of one episode with the same bidders: ``(episode, first, stop, bidders)``
stands for the rows (episode, t, b) for first <= t < stop and every b in `bidders`.

Env runners and learners can write their entries to a ledger folder (`RowLedger`, one CSV file
per process, appended and flushed at every `sample()` call and update), and `compare_rows` checks
that the trained rows are the sampled rows as multisets: none duplicated, none lost.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

#: Ledger file name prefixes of the two sides.
SAMPLED, TRAINED = "sampled", "trained"
#: A ledger file's columns: the process's call (`sample()` or update) count, its wall time, the
#: entry, and an end mark (a line cut by a kill has none).
LEDGER_COLUMNS = ("call", "time", "episode", "first", "stop", "bidders", "end")


class RowEntry(NamedTuple):
    """Rows (episode, t, b) for first <= t < stop and every b with ``bidders[b]``."""

    episode: str
    first: int
    stop: int
    bidders: np.ndarray  # (bidders,) bool

    def num_rows(self) -> int:
        return (self.stop - self.first) * int(self.bidders.sum())


def entries_of(episode: str, steps: np.ndarray, bidders: np.ndarray) -> list[RowEntry]:
    """The entries of one episode's rows: `steps` (T,) consecutive auction steps and `bidders`
    (T, bidders) which bidders' rows there are at each; runs with the same bidders become one
    entry (steps without any row are left out)."""
    entries, start = [], 0
    for t in range(1, len(steps) + 1):
        if t == len(steps) or not np.array_equal(bidders[t], bidders[start]):
            if bidders[start].any():
                entries.append(RowEntry(episode, int(steps[start]), int(steps[t - 1]) + 1, bidders[start].copy()))
            start = t
    if len(steps) and np.any(np.diff(steps) != 1):
        raise ValueError(f"episode {episode}: rows of non-consecutive auctions {steps.tolist()}")
    return entries


_STEPS, _BIDDERS, _EPISODES = 1 << 20, 1 << 20, 1 << 23


def row_keys(entries: Iterable[RowEntry], episodes: dict[str, int]) -> np.ndarray:
    """Every row of the entries as one int64 key (episode number, step, bidder), episode ids
    numbered by `episodes` (extended with new ids)."""
    keys = []
    for entry in entries:
        number = episodes.setdefault(entry.episode, len(episodes))
        if entry.stop > _STEPS or len(entry.bidders) > _BIDDERS or number >= _EPISODES:
            raise ValueError(f"row keys hold up to {_EPISODES} episodes of {_STEPS} auctions and {_BIDDERS} "
                             f"bidders; got {entry}")
        steps = np.arange(entry.first, entry.stop, dtype=np.int64)
        bidders = np.flatnonzero(entry.bidders).astype(np.int64)
        keys.append(((number << 40) + (steps[:, None] << 20) + bidders[None, :]).reshape(-1))
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


def compare_rows(sampled: Iterable[RowEntry], trained: Iterable[RowEntry]) -> dict[str, int]:
    """How the trained rows differ from the sampled rows, as multisets: ``rows`` sampled,
    ``duplicated`` (sampled or trained more than once), ``lost`` (sampled, never trained) and
    ``unsampled`` (trained, never sampled)."""
    episodes: dict[str, int] = {}
    have, want = row_keys(trained, episodes), row_keys(sampled, episodes)
    sampled_keys, sampled_counts = np.unique(want, return_counts=True)
    trained_keys, trained_counts = np.unique(have, return_counts=True)
    return {
        "rows": len(want),
        "duplicated": int((sampled_counts - 1).sum() + (trained_counts - 1).sum()),
        "lost": int(np.setdiff1d(sampled_keys, trained_keys, assume_unique=True).size),
        "unsampled": int(np.setdiff1d(trained_keys, sampled_keys, assume_unique=True).size),
    }


class RowLedger:
    """Appends this process's entries to ``{folder}/{side}-{job}-{pid}.csv`` (job: the Ray job
    of the driver, so a resumed run is a new one), one flushed block per call, so that a process
    killed at any point leaves every block it finished."""

    def __init__(self, folder: str | os.PathLike, side: str):
        self.path = Path(folder) / f"{side}-{_job_id()}-{os.getpid()}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.calls = 0

    def record(self, entries: list[RowEntry]) -> None:
        self.calls += 1
        now = time.time()
        new = not self.path.exists()
        with self.path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(LEDGER_COLUMNS)
            writer.writerows((self.calls, f"{now:.6f}", e.episode, e.first, e.stop, _mask_hex(e.bidders), ".")
                             for e in entries)


def read_ledger(path: str | os.PathLike) -> list[dict]:
    """The rows of one ledger file: dicts with ``call``, ``time`` and ``entry`` (a `RowEntry`),
    skipping a last line cut by a kill."""
    rows = []
    with Path(path).open(newline="") as file:
        for line in csv.DictReader(file):
            if line.get("end") != ".":  # a line cut by a kill
                continue
            try:
                bidders = _hex_mask(line["bidders"])
                entry = RowEntry(line["episode"], int(line["first"]), int(line["stop"]), bidders)
                rows.append({"call": int(line["call"]), "time": float(line["time"]), "entry": entry})
            except (AttributeError, TypeError, ValueError):  # a line cut by a kill
                continue
    return rows


def _job_id() -> str:
    import ray  # the ledger's processes run under Ray; the rest of this module does not need it

    return ray.get_runtime_context().get_job_id() if ray.is_initialized() else "local"


def _mask_hex(mask: np.ndarray) -> str:
    """A bool mask as hex digits, bidder 0 the lowest bit."""
    return format(int("".join("1" if b else "0" for b in reversed(mask.tolist())) or "0", 2), "x") + f"/{len(mask)}"


def _hex_mask(text: str) -> np.ndarray:
    value, size = text.split("/")
    bits = bin(int(value, 16))[2:].zfill(int(size))
    return np.array([c == "1" for c in reversed(bits)], dtype=bool)[: int(size)]
