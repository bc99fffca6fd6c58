"""The TwoRooms pipeline end to end on tiny budgets: pre-train the three primitive policies (one
Tune trial each), a society of them as options on the pre-train task, its transfer from the
pre-trained checkpoint, and the two baselines. Asserts the plumbing, not learning."""

from __future__ import annotations

import pytest

from rllib_society.checkpoints import latest_checkpoint, load_modules
from experiments.config_files import load_config, load_grid
from rllib_society.auction_env import make_base_env
from rllib_society.options import check_option

TINY = {"stop_timesteps": 256}
TINY_SETS = ["train_batch_size_per_learner=256", "minibatch_size=128", "num_envs_per_env_runner=2",
             "eval_episodes=2"]


def run(tmp_path, yaml: str, name: str, sets=(), **overrides):
    from experiments.training import train

    config = load_config(yaml, {**TINY, "output": str(tmp_path / name), **overrides}, [*TINY_SETS, *sets])
    return train(config)


@pytest.fixture(scope="module")
def primitives(ray_session, tmp_path_factory):
    from experiments.search import search

    folder = tmp_path_factory.mktemp("primitives")
    path = "configs/tworooms_primitives.yaml"
    config = load_config(path, {**TINY, "output": str(folder)}, TINY_SETS)
    table = search(config, load_grid(path), 1)
    assert list(table["status"]) == ["TERMINATED"] * 3
    return [row["path"] for _, row in table.sort_values("env", key=lambda e: e.map(
        {"TwoRooms-Red-v0": 0, "TwoRooms-Green-v0": 1, "TwoRooms-Blue-v0": 2})).iterrows()]


def test_each_primitive_is_a_single_policy_checkpoint(primitives):
    for trial in primitives:
        assert list(load_modules(trial)) == ["default_policy"]


def test_society_pretrains_on_options_then_transfers_from_its_checkpoint(primitives, tmp_path):
    import pandas as pd

    from experiments.reporting import EPISODE_ENV_STEPS

    options = {"options": primitives}
    pretrain = run(tmp_path, "configs/tworooms_pretrain.yaml", "pretrain", target_return=-1.0, **options)
    assert pretrain["env"] == "TwoRooms-Pretrain-v0" and pretrain["greedy_success"] is not None
    # Reached at the first evaluation, counted in env steps (RLlib counts auctions, one per option).
    progress = pd.read_csv(tmp_path / "pretrain" / "progress.csv")
    assert pretrain["steps_to_target"] == progress[EPISODE_ENV_STEPS].iloc[0]
    assert list(load_modules(tmp_path / "pretrain")) == ["p0", "p1", "p2"]  # one module per option
    with pytest.raises(ValueError, match="primitives are options themselves"):  # a society of options is none
        check_option(tmp_path / "pretrain", make_base_env("envs:TwoRooms-Pretrain-v0"))
    assert (tmp_path / "pretrain" / "episode.png").stat().st_size > 0  # the greedy episode strip

    transfer = run(tmp_path, "configs/tworooms_transfer.yaml", "transfer",
                   init_checkpoint=str(tmp_path / "pretrain"), **options)
    assert transfer["env"] == "TwoRooms-Transfer-v0"
    # Options take several env steps per auction step.
    assert transfer["greedy_length"] >= 1


def test_transfer_starts_from_the_pretrained_weights(primitives, tmp_path, ray_session):
    import torch

    from experiments.algo_config import SocietyPPO, trial_param_space

    options = {"options": primitives}
    run(tmp_path, "configs/tworooms_pretrain.yaml", "pretrain", **options)
    config = load_config("configs/tworooms_transfer.yaml", {
        **TINY, "output": str(tmp_path / "t"), "init_checkpoint": str(tmp_path / "pretrain"), **options,
    }, TINY_SETS)
    algo = SocietyPPO(trial_param_space(config))
    try:
        weights = algo.learner_group.get_weights()
        for module_id, saved in load_modules(tmp_path / "pretrain").items():
            acting = algo.get_module(module_id).state_dict()  # the env runner's copy
            for name, value in saved.state_dict().items():
                torch.testing.assert_close(torch.as_tensor(weights[module_id][name]), value)
            for name in saved.get_state(inference_only=True):  # what env runners are sent
                torch.testing.assert_close(acting[name], saved.state_dict()[name])
    finally:
        algo.stop()


def test_baselines_run_through_the_same_entry_point(primitives, tmp_path):
    over_options = run(tmp_path, "configs/tworooms_pretrain.yaml", "monolithic", algo="monolithic",
                       options=primitives)
    assert over_options["algo"] == "monolithic"
    # Its one iteration is not the 2nd: the greedy evaluation is of the final checkpoint.
    flat = run(tmp_path, "configs/tworooms_transfer.yaml", "flat", algo="monolithic", options=[],
               sets=["init_checkpoint=null", "eval_interval=2"])
    assert flat["env_steps"] >= 256 and flat["iterations"] == 1
    assert flat["eval_failed"] == 0 and flat["greedy_length"] > 0 and flat["greedy_return"] is not None


def test_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(ValueError, match="no RLlib checkpoint"):
        latest_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="no RLlib checkpoint"):
        load_config("configs/tworooms_transfer.yaml", {"init_checkpoint": str(tmp_path), "options": []})
