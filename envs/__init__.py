"""The project's envs (toy MDPs, Mental Rotation, TwoRooms, Taxi's sub-tasks); importing this package registers
their gymnasium ids (time limits are gymnasium TimeLimit truncations). `ENV_IDS` lists the ids;
`importable_env_id` names one so that any process that makes it imports this package first."""

import gymnasium as gym

#: id -> (entry point, max_episode_steps, constructor kwargs).
_SPECS: dict[str, tuple[str, int | None, dict]] = {
    "Bandit-v0": ("envs.bandit:BanditEnv", None, {}),
    "Chain-v0": ("envs.chain:ChainEnv", 20, {}),
    "Duality-v0": ("envs.duality:DualityEnv", 10, {}),
    "MentalRotation-v0": ("envs.mental_rotation:MentalRotationEnv", None, {}),
    **{
        # 50: the algorithm's cut, envs.two_rooms.HORIZON (importing it here would load minigrid).
        f"TwoRooms-{task.capitalize()}-v0": ("envs.two_rooms:make_two_rooms", 50, {"task": task})
        for task in ("red", "green", "blue", "pretrain", "transfer")
    },
    **{
        # 25: envs.taxi_tasks.HORIZON
        f"TaxiTask-{landmark}-{final.capitalize()}-v0": (
            "envs.taxi_tasks:TaxiTaskEnv", 25, {"landmark": landmark, "final": final})
        for landmark in "RGYB" for final in ("pickup", "dropoff")
    },
}
ENV_IDS: tuple[str, ...] = tuple(_SPECS)

for _env_id, (_entry_point, _max_steps, _kwargs) in _SPECS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps, kwargs=_kwargs)


def importable_env_id(env_id: str) -> str:
    """``envs:<id>`` for this project's own ids (else `env_id`): gymnasium imports the ``envs``
    package, which registers them, in whichever process makes the env (a remote env runner too),
    so the library needs no import of the project's envs."""
    return f"envs:{env_id}" if env_id in ENV_IDS else env_id
