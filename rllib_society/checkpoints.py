"""Finding what a run saved: the latest RLlib checkpoint under a run, trial or checkpoint folder,
and the RLModule inside one (for options, transfer and evaluation)."""

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


def module_folder(path: str | Path) -> Path:
    """The saved RLModule of the checkpoint `latest_checkpoint` finds: a society's
    `SocietyModule` or a single-agent policy (both runs train one RLlib module)."""
    modules = latest_checkpoint(path) / MODULES_SUBDIR
    folders = [p for p in sorted(modules.iterdir()) if p.is_dir()]
    if len(folders) != 1:
        raise ValueError(f"{str(path)!r} holds modules {[p.name for p in folders]}; expected one.")
    return folders[0]


def load_module(path: str | Path):
    """The trained RLModule of a run, trial or checkpoint folder, in eval mode."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(module_folder(path))
    module.eval()
    return module
