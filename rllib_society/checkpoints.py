"""Finding what a run saved: the latest RLlib checkpoint under a run, trial or checkpoint folder,
and the RLModules inside one (for options, transfer and evaluation)."""

from __future__ import annotations

from pathlib import Path

#: Where an RLlib algorithm checkpoint keeps its modules (learner_group/learner/rl_module).
MODULES_SUBDIR = Path("learner_group", "learner", "rl_module")


def latest_checkpoint(path: str | Path) -> Path:
    """The checkpoint `path` names: itself, or the newest ``checkpoint_*`` in it or in its
    ``trial/`` folder (a run.py output folder).

    Raises:
        ValueError: when there is none, naming the path.
    """
    path = Path(path).expanduser().resolve()
    if (path / MODULES_SUBDIR).is_dir():
        return path
    for folder in (path, path / "trial"):
        found = sorted(folder.glob("checkpoint_*")) if folder.is_dir() else []
        if found:
            return found[-1]
    raise ValueError(f"{str(path)!r} holds no RLlib checkpoint (a checkpoint_* folder, directly or "
                     f"in trial/).")


def module_folders(path: str | Path) -> dict[str, Path]:
    """Module id -> saved RLModule folder of the checkpoint `latest_checkpoint` finds."""
    modules = latest_checkpoint(path) / MODULES_SUBDIR
    return {p.name: p for p in sorted(modules.iterdir()) if p.is_dir()}
