"""The project's envs (toy MDPs, Mental Rotation, TwoRooms); importing this package registers
their gymnasium ids (time limits are gymnasium TimeLimit truncations). `ENV_IDS` lists the ids."""

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
}
ENV_IDS: tuple[str, ...] = tuple(_SPECS)

for _env_id, (_entry_point, _max_steps, _kwargs) in _SPECS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps, kwargs=_kwargs)
