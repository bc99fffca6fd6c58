"""Does a change cost speed? `throughput.py` in two checkouts of the code, interleaved.

Runs ``benchmarks/throughput.py`` (the arguments after ``--``) alternately in the ``--before``
checkout and in this one, ``--passes`` times each (before, after, before, after, ...), each with
its checkout first on the Python path. Machines are noisy, so what is compared is each run's
society / single-agent PPO ratio (measured within the run's own rounds), not raw env steps/s:
a change's cost is ``median ratio after / median ratio before - 1``, per society size, algo and
mode (``sample``: sampling alone; ``train``: whole iterations).

Writes ``{--csv}_before.csv`` and ``{--csv}_after.csv`` (every measurement, with its pass and
commit) and ``{--csv}_summary.csv`` (the comparison), and prints the comparison as a table.

Usage::

    git worktree add ../before <commit>
    python benchmarks/before_after.py --before ../before --csv benchmarks/results/contract \\
        -- --primitives 4 32 --no-stock --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "single-agent PPO"
KEY = ("primitives", "env_runners", "envs_per_runner", "algo", "mode")


def commit(checkout: Path) -> str:
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def run_throughput(checkout: Path, arguments: list[str], csv_path: Path) -> list[dict]:
    """One `throughput.py` run in `checkout`; its measurements."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "benchmarks/throughput.py", *arguments, "--csv", str(csv_path)],
                   cwd=checkout, env=env, check=True)
    with csv_path.open(newline="") as file:
        return list(csv.DictReader(file))


def ratios(rows: list[dict]) -> dict[tuple, list[float]]:
    """Per KEY (but the algo's baseline), every round's ratio to single-agent PPO of the same pass."""
    base = {(r["pass"], r["round"], *(r[k] for k in KEY if k != "algo")): float(r["sps"])
            for r in rows if r["algo"] == BASELINE}
    found: dict[tuple, list[float]] = {}
    for r in rows:
        if r["algo"] != BASELINE:
            found.setdefault(tuple(r[k] for k in KEY), []).append(
                float(r["sps"]) / base[(r["pass"], r["round"], *(r[k] for k in KEY if k != "algo"))])
    return found


def compare(before: list[dict], after: list[dict]) -> list[dict]:
    was, now = ratios(before), ratios(after)
    summary = []
    for key in sorted(was.keys() & now.keys(), key=lambda k: (int(k[0]), k[1], k[2], k[4], k[3])):
        b, a = statistics.median(was[key]), statistics.median(now[key])
        summary.append({**dict(zip(KEY, key)), "ratio_before": round(b, 4), "ratio_after": round(a, 4),
                        "change": round(a / b - 1, 4), "ratio_after_min": round(min(now[key]), 4),
                        "ratio_after_max": round(max(now[key]), 4), "rounds": len(now[key])})
    return summary


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a checkout of the code before the change (git worktree)")
    parser.add_argument("--passes", type=int, default=3, help="throughput.py runs per checkout, alternating")
    parser.add_argument("--csv", required=True, help="path prefix of the CSVs written")
    parser.add_argument("throughput_args", nargs=argparse.REMAINDER, help="-- then throughput.py's arguments")
    args = parser.parse_args(argv)
    arguments = [a for a in args.throughput_args if a != "--"]
    checkouts = {"before": Path(args.before).resolve(), "after": ROOT}
    if not (checkouts["before"] / "benchmarks" / "throughput.py").is_file():
        parser.error(f"--before={args.before} is not a checkout of this project (no benchmarks/throughput.py)")
    rows = {side: [] for side in checkouts}
    with tempfile.TemporaryDirectory() as folder:
        for pass_ in range(args.passes):
            for side, checkout in checkouts.items():
                print(f"pass {pass_}: {side} ({commit(checkout)})", flush=True)
                found = run_throughput(checkout, arguments, Path(folder) / f"{side}-{pass_}.csv")
                rows[side] += [{"pass": pass_, "commit": commit(checkout), **r} for r in found]
    prefix = Path(args.csv)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for side, found in rows.items():
        write(prefix.with_name(f"{prefix.name}_{side}.csv"), found)
    summary = compare(rows["before"], rows["after"])
    write(prefix.with_name(f"{prefix.name}_summary.csv"), summary)
    print(f"\nbefore {commit(checkouts['before'])}, after {commit(ROOT)}: ratio to single-agent PPO, median over "
          f"{args.passes} passes x rounds\n")
    print("| primitives | runners x envs | algo | mode | before | after (min-max) | change |\n|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['primitives']} | {s['env_runners']} x {s['envs_per_runner']} | {s['algo']} | {s['mode']} | "
              f"{s['ratio_before']:.3f} | {s['ratio_after']:.3f} ({s['ratio_after_min']:.3f}-{s['ratio_after_max']:.3f}) "
              f"| {s['change']:+.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
