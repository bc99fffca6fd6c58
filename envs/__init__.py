"""The project's envs (toy MDPs and Mental Rotation); importing this package registers their gymnasium ids (time limits
are gymnasium TimeLimit truncations). `ENV_IDS` lists the ids."""

import gymnasium as gym

#: id -> (entry point, max_episode_steps).
_SPECS: dict[str, tuple[str, int | None]] = {
    "Bandit-v0": ("envs.bandit:BanditEnv", None),
    "Chain-v0": ("envs.chain:ChainEnv", 20),
    "Duality-v0": ("envs.duality:DualityEnv", 10),
    "MentalRotation-v0": ("envs.mental_rotation:MentalRotationEnv", None),
}
ENV_IDS: tuple[str, ...] = tuple(_SPECS)

for _env_id, (_entry_point, _max_steps) in _SPECS.items():
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)
