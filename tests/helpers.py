"""Helpers shared by the end-to-end tests."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs one of the project's scripts from the project folder and captures its output."""
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def read_scalars(folder: Path) -> dict[str, list[float]]:
    """Every scalar series in the TensorBoard event files of `folder`, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
