"""Finding what a run saved: the latest RLlib checkpoint under a run, trial or checkpoint folder,
and the RLModule inside one (for options, transfer and evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.rllib.core.rl_module.rl_module import RLModule

#: RLlib's id of a single-agent run's module.
DEFAULT_MODULE_ID = "default_policy"
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


def load_modules(path: str | Path) -> dict[str, "RLModule"]:
    """The trained RLModules of a run, trial or checkpoint folder, by module id, in eval mode: a
    society's ``p0``, ``p1``, ... in primitive order, or a single-agent run's ``default_policy``."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    folder = latest_checkpoint(path) / MODULES_SUBDIR
    module_ids = sorted((p.name for p in folder.iterdir() if p.is_dir()), key=lambda m: (len(m), m))
    modules = {module_id: RLModule.from_checkpoint(folder / module_id) for module_id in module_ids}
    for module in modules.values():
        module.eval()
    return modules


def saved_society_config(path: str | Path) -> dict:
    """The society config (``env_config`` of its `SocietyPPOConfig`: env, clones, options, ...)
    a society's checkpoint was trained with, from RLlib's saved constructor arguments.

    Raises:
        ValueError: when the checkpoint holds no society config, naming the path.
    """
    import pickle

    checkpoint = latest_checkpoint(path)
    with (checkpoint / "class_and_ctor_args.pkl").open("rb") as file:
        saved = pickle.load(file)
    config = saved["ctor_args_and_kwargs"][0][0].get("env_config") or {}
    if "clones" not in config:
        raise ValueError(f"{str(checkpoint)!r} is not a checkpoint of a society (its env_config has no 'clones').")
    return config


def load_policy(path: str | Path) -> "RLModule":
    """The one module of a single-agent run (a monolithic policy, or an option).

    Raises:
        ValueError: for a society's checkpoint, naming its modules.
    """
    modules = load_modules(path)
    if list(modules) != [DEFAULT_MODULE_ID]:
        raise ValueError(f"{str(path)!r} holds modules {list(modules)} (a society); a single-agent policy "
                         f"(a run with algo: monolithic) has one, {DEFAULT_MODULE_ID!r}.")
    return modules[DEFAULT_MODULE_ID]
