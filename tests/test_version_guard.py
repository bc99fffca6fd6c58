"""Version guard: every private or undocumented RLlib, Ray and torch API the fast path relies on
(docs/design.md lists them with what each is used for), checked without starting Ray, one named
test each, so that an upgrade of ray[rllib] or torch fails here and says which API moved, not in
the middle of a training run. A check reads the installed source where the dependency is on a
behaviour rather than a name (e.g. which attribute RLlib's `__init__` sets)."""

import dataclasses
import importlib
import inspect
from inspect import getsource as src
from inspect import signature as sig

import pytest
import torch


def params(f):
    return list(sig(f).parameters)


def kinds(f):
    return {n: p.kind.name for n, p in sig(f).parameters.items()}


def _multiagentenvrunner_envrunner(check):
    """MultiAgentEnvRunner / EnvRunner."""
    from ray.rllib.env.env_runner import EnvRunner
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner as MAER

    check(
        "MAER._sample sig",
        lambda: (
            params(MAER._sample)
            == ["self", "num_timesteps", "num_episodes", "explore", "random_actions", "force_reset"]
            and all(k == "KEYWORD_ONLY" for n, k in kinds(MAER._sample).items() if n != "self")
        ),
    )
    check("MAER.sample calls self._sample", lambda: src(MAER.sample).count("self._sample(") == 3)
    check("MAER.sample makes on_sample_end", lambda: '"on_sample_end"' in src(MAER.sample))
    init = src(MAER.__init__)
    for a in [
        "self._callbacks",
        "self.env:",
        "self.module:",
        "self._needs_initial_reset",
        "self._done_episodes_for_metrics",
        "self._ongoing_episodes_for_metrics",
    ]:
        check(f"MAER.__init__ sets {a}", lambda: a in init)
    base = src(EnvRunner.__init__)
    for a in ["self.config", "self.num_env_steps_sampled_lifetime", "self.metrics", "self._seed"]:
        check(f"EnvRunner.__init__ sets {a}", lambda: a in base)
    check(
        "MAER._log_episode_metrics sig",
        lambda: params(MAER._log_episode_metrics)[:4] == ["self", "length", "ret", "sec"],
    )
    check(
        "MAER.set_state syncs lifetime",
        lambda: "self.num_env_steps_sampled_lifetime = state[NUM_ENV_STEPS_SAMPLED_LIFETIME]" in src(MAER.set_state),
    )
    check("MAER.get_metrics reduces", lambda: "return self.metrics.reduce()" in src(MAER.get_metrics))
    check("MAER.make_env sets _needs_initial_reset", lambda: "self._needs_initial_reset = True" in src(MAER.make_env))
    check(
        "on-episode kwargs",
        lambda: all(
            k in src(MAER._make_on_episode_callback)
            for k in [
                "episode=",
                "env_runner=",
                "metrics_logger=",
                "env=self.env.unwrapped",
                "rl_module=",
                "env_index=",
                "prev_episode_chunks",
            ]
        ),
    )
    from ray.rllib.env.vector.sync_vector_multi_agent_env import SyncVectorMultiAgentEnv

    check("SyncVectorMultiAgentEnv.envs", lambda: "self.envs = " in src(SyncVectorMultiAgentEnv.__init__))
    from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv

    check(
        "VectorMultiAgentEnv.unwrapped",
        lambda: isinstance(inspect.getattr_static(VectorMultiAgentEnv, "unwrapped"), property),
    )
    for n in [
        "_open",
        "_obs",
        "_episode_callbacks",
        "_ledger",
        "auction_envs",
        "_step_until",
        "_reset",
        "_start_episode",
        "_callback",
        "_bid",
        "_chunk",
        "_end_episode",
        "_log_sampled",
    ]:
        check(
            f"MAER has no {n}", lambda: not hasattr(MAER, n) and f"self.{n} " not in init and f"self.{n}:" not in init
        )
    from ray.rllib.callbacks.utils import make_callback

    check(
        "make_callback sig",
        lambda: (
            params(make_callback) == ["callback_name", "callbacks_objects", "callbacks_functions", "args", "kwargs"]
        ),
    )
    from ray.rllib.callbacks.callbacks import RLlibCallback

    check(
        "RLlibCallback hooks",
        lambda: all(
            callable(getattr(RLlibCallback, n, None))
            for n in ["on_episode_created", "on_episode_start", "on_episode_step", "on_episode_end", "on_sample_end"]
        ),
    )
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    c = AlgorithmConfig()
    check(
        "config callbacks_on_*",
        lambda: all(
            hasattr(c, f"callbacks_on_{n}")
            for n in ["episode_created", "episode_start", "episode_step", "episode_end", "sample_end"]
        ),
    )
    from ray.rllib.execution import rollout_ops

    check(
        "synchronous_parallel_sample reads NUM_AGENT_STEPS_SAMPLED",
        lambda: "stat_dict[NUM_AGENT_STEPS_SAMPLED]" in src(rollout_ops.synchronous_parallel_sample),
    )
    check(
        "synchronous_parallel_sample reads NUM_ENV_STEPS_SAMPLED",
        lambda: "stat_dict.get(NUM_ENV_STEPS_SAMPLED, 0)" in src(rollout_ops.synchronous_parallel_sample),
    )


def _metricslogger(check):
    """MetricsLogger."""
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger, DEFAULT_STATS_CLS_LOOKUP

    check("log_value kw", lambda: {"reduce", "window", "with_throughput"} <= set(params(MetricsLogger.log_value)))
    check("log_dict kw", lambda: {"key", "window"} <= set(params(MetricsLogger.log_dict)))
    check("stats reducers", lambda: {"sum", "lifetime_sum", "mean"} <= set(DEFAULT_STATS_CLS_LOOKUP))
    from ray.rllib.utils import metrics as M

    check(
        "metric keys",
        lambda: (
            (
                M.NUM_ENV_STEPS_SAMPLED,
                M.NUM_ENV_STEPS_SAMPLED_LIFETIME,
                M.NUM_EPISODES,
                M.NUM_EPISODES_LIFETIME,
                M.NUM_MODULE_STEPS_SAMPLED,
                M.NUM_MODULE_STEPS_SAMPLED_LIFETIME,
                M.NUM_ENV_STEPS_TRAINED,
                M.NUM_ENV_STEPS_TRAINED_LIFETIME,
                M.NUM_MODULE_STEPS_TRAINED,
                M.NUM_MODULE_STEPS_TRAINED_LIFETIME,
                M.MODULE_TRAIN_BATCH_SIZE_MEAN,
                M.WEIGHTS_SEQ_NO,
            )
            == (
                "num_env_steps_sampled",
                "num_env_steps_sampled_lifetime",
                "num_episodes",
                "num_episodes_lifetime",
                "num_module_steps_sampled",
                "num_module_steps_sampled_lifetime",
                "num_env_steps_trained",
                "num_env_steps_trained_lifetime",
                "num_module_steps_trained",
                "num_module_steps_trained_lifetime",
                "module_train_batch_size_mean",
                "weights_seq_no",
            )
        ),
    )


def _learner_torchlearner_ppo_learner(check):
    """Learner / TorchLearner / PPO learner."""
    from ray.rllib.core.learner.learner import Learner, DEFAULT_OPTIMIZER, ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
    from ray.rllib.core.learner.torch.torch_learner import TorchLearner
    from ray.rllib.algorithms.ppo.ppo_learner import PPOLearner
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner as PTL
    from ray.rllib.algorithms.ppo.ppo import LEARNER_RESULTS_KL_KEY, LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY

    li = src(Learner.__init__)
    for a in [
        "self._module:",
        "self._weights_seq_no = 0",
        "self._learner_connector:",
        "self._params:",
        "self.metrics:",
    ]:
        check(f"Learner.__init__ sets {a}", lambda: a in li)
    check(
        "Learner.update sig",
        lambda: (
            params(Learner.update)[:8]
            == [
                "self",
                "batch",
                "batches",
                "batch_refs",
                "episodes",
                "episodes_refs",
                "data_iterators",
                "training_data",
            ]
            and {"timesteps", "num_total_minibatches", "num_epochs", "minibatch_size", "shuffle_batch_per_epoch"}
            <= set(params(Learner.update))
        ),
    )
    us = src(Learner.update)
    check(
        "Learner.update flow",
        lambda: all(
            s in us
            for s in [
                "self._weights_seq_no += 1",
                "self._create_iterator_if_necessary(",
                "self._update(",
                "self._log_steps_trained_metrics(tensor_minibatch)",
                "self.after_gradient_based_update(",
                "self._set_slicing_by_batch_id(tensor_minibatch, value=False)",
            ]
        ),
    )
    check(
        "_create_iterator_if_necessary sig",
        lambda: (
            params(Learner._create_iterator_if_necessary)
            == [
                "self",
                "training_data",
                "num_total_minibatches",
                "num_epochs",
                "minibatch_size",
                "shuffle_batch_per_epoch",
                "kwargs",
            ]
        ),
    )
    check("_make_batch_if_necessary sig", lambda: params(Learner._make_batch_if_necessary) == ["self", "training_data"])
    check("_make_batch calls connector", lambda: "self._learner_connector(" in src(Learner._make_batch_if_necessary))
    check("_log_steps_trained_metrics sig", lambda: params(Learner._log_steps_trained_metrics) == ["self", "batch"])
    check(
        "should_module_be_updated sig",
        lambda: params(Learner.should_module_be_updated)[:3] == ["self", "module_id", "multi_agent_batch"],
    )
    check("compute_losses sig", lambda: params(Learner.compute_losses) == ["self", "fwd_out", "batch"])
    check("compute_gradients sig", lambda: params(Learner.compute_gradients) == ["self", "loss_per_module", "kwargs"])
    check("postprocess_gradients sig", lambda: params(Learner.postprocess_gradients) == ["self", "gradients_dict"])
    check("apply_gradients sig", lambda: params(Learner.apply_gradients) == ["self", "gradients_dict"])
    check(
        "after_gradient_based_update sig", lambda: params(Learner.after_gradient_based_update) == ["self", "timesteps"]
    )
    check(
        "configure_optimizers_for_module sig",
        lambda: params(Learner.configure_optimizers_for_module) == ["self", "module_id", "config"],
    )
    check(
        "_set_optimizer_lr static (optimizer, lr)",
        lambda: (
            isinstance(inspect.getattr_static(TorchLearner, "_set_optimizer_lr"), staticmethod)
            and params(TorchLearner._set_optimizer_lr) == ["optimizer", "lr"]
        ),
    )
    check(
        "register_optimizer kw",
        lambda: (
            {"module_id", "optimizer_name", "optimizer", "params", "lr_or_lr_schedule"}
            <= set(params(Learner.register_optimizer))
        ),
    )
    check("get_optimizer sig", lambda: params(Learner.get_optimizer) == ["self", "module_id", "optimizer_name"])
    check(
        "get_param_ref/get_parameters",
        lambda: (
            params(TorchLearner.get_param_ref) == ["self", "param"]
            and params(TorchLearner.get_parameters) == ["self", "module"]
        ),
    )
    check(
        "TorchLearner._uncompiled_update flow",
        lambda: all(
            s in src(TorchLearner._uncompiled_update)
            for s in [
                "self.module.forward_train(batch)",
                "self.compute_losses(fwd_out=fwd_out, batch=batch)",
                "self.compute_gradients(loss_per_module)",
                "self.postprocess_gradients(gradients)",
                "self.apply_gradients(postprocessed_gradients)",
            ]
        ),
    )
    pb = src(PPOLearner.build)
    check(
        "PPOLearner.build attrs",
        lambda: "self.entropy_coeff_schedulers_per_module" in pb and "self.curr_kl_coeffs_per_module" in pb,
    )
    check(
        "PPOLearner.after_gradient_based_update peeks KL",
        lambda: "(module_id, LEARNER_RESULTS_KL_KEY)" in src(PPOLearner.after_gradient_based_update),
    )
    check(
        "grad-norm key",
        lambda: 'f"gradients_{optimizer_name}_global_norm"' in src(Learner.postprocess_gradients_for_module),
    )
    check(
        "loss keys",
        lambda: (
            (
                DEFAULT_OPTIMIZER,
                POLICY_LOSS_KEY,
                VF_LOSS_KEY,
                ENTROPY_KEY,
                LEARNER_RESULTS_KL_KEY,
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
            )
            == ("default_optimizer", "policy_loss", "vf_loss", "entropy", "mean_kl_loss", "vf_loss_unclipped")
        ),
    )
    for n in [
        "_loss_stats",
        "_grad_norms",
        "_steps_trained",
        "_minibatches",
        "_update_rows",
        "_trained_rows",
        "_trained",
        "_stacked_gradients",
        "_adam_stacks",
        "_step_counters",
        "_ledger",
        "trained_rows",
        "_log_trained",
        "_gradient_stacks",
        "_params_by_module",
        "_stacked_adam_lists",
        "_average_over_learners",
        "_sum_over_learners",
        "_update_value_scale",
        "_adaptive",
        "_bid_distribution",
    ]:
        check(
            f"PTL has no {n}",
            lambda: (
                not hasattr(PTL, n)
                and not any(
                    f"self.{n} " in src(k) or f"self.{n}:" in src(k)
                    for k in PTL.__mro__
                    if k.__module__.startswith("ray.rllib") and k not in (object,)
                )
            ),
        )
    from ray.rllib.core.learner.training_data import TrainingData

    check(
        "TrainingData fields",
        lambda: (
            [f.name for f in dataclasses.fields(TrainingData)]
            == ["batch", "batches", "batch_refs", "episodes", "episodes_refs", "data_iterators"]
            and callable(TrainingData.validate)
            and callable(TrainingData.solve_refs)
        ),
    )
    from ray.rllib.connectors.learner import LearnerConnectorPipeline

    check("LearnerConnectorPipeline(connectors=)", lambda: "connectors" in params(LearnerConnectorPipeline.__init__))
    from ray.rllib.utils.minibatch_utils import ShardEpisodesIterator

    s = src(ShardEpisodesIterator.__iter__)
    check(
        "ShardEpisodesIterator uses [:n] and .slice(len_lookback_buffer=)",
        lambda: "episode[:remaining_length]" in s and "episode.slice(" in s and "len_lookback_buffer=" in s,
    )
    from ray.rllib.policy.sample_batch import SampleBatch, MultiAgentBatch

    st = vars(SampleBatch({"x": torch.zeros(1)}))
    check(
        "SampleBatch instance attrs",
        lambda: (
            set(st)
            == {
                "time_major",
                "max_seq_len",
                "zero_padded",
                "_is_training",
                "num_grad_updates",
                "_slice_seq_lens_in_B",
                "accessed_keys",
                "added_keys",
                "deleted_keys",
                "intercepted_values",
                "get_interceptor",
                "count",
                "_slice_map",
            }
        ),
    )
    check("MultiAgentBatch sig", lambda: params(MultiAgentBatch.__init__) == ["self", "policy_batches", "env_steps"])


def _multirlmodule_rlmodule_ppo_default_module(check):
    """MultiRLModule / RLModule / PPO default module."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
    from ray.rllib.core.rl_module.rl_module import RLModule

    check("MultiRLModule.setup sets _rl_modules", lambda: "self._rl_modules = {}" in src(MultiRLModule.setup))
    check(
        "MultiRLModule._forward_train sig", lambda: params(MultiRLModule._forward_train) == ["self", "batch", "kwargs"]
    )
    check(
        "RLModule.forward_train -> _forward_train",
        lambda: "return self._forward_train(batch, **kwargs)" in src(RLModule.forward_train),
    )
    check(
        "MultiRLModule.add_module writes _rl_modules",
        lambda: "self._rl_modules[module_id] = module" in src(MultiRLModule.add_module),
    )
    check("RLModule.unwrapped", lambda: callable(RLModule.unwrapped))
    for n in [
        "rows_per_state",
        "_tied_calls",
        "module_ids",
        "_position",
        "_stacked_modules",
        "_parts",
        "device",
        "tie",
        "tied",
        "bid_inputs",
        "state_values",
        "scatter_grads",
        "parameter_stacks",
        "zero_grads",
        "_stack_modules",
        "_stacked_parts",
        "_repeated_rows",
        "_module_forward_train",
    ]:
        check(
            f"MultiRLModule has no {n}",
            lambda: not hasattr(MultiRLModule, n) and f"self.{n} " not in src(MultiRLModule) + src(RLModule),
        )
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule as D
    from ray.rllib.algorithms.ppo.default_ppo_rl_module import DefaultPPORLModule

    check(
        "DefaultPPORLModule.setup builds encoder/pi/vf",
        lambda: all(s in src(DefaultPPORLModule.setup) for s in ["self.encoder = ", "self.pi = ", "self.vf = "]),
    )
    check(
        "vf dropped when inference_only",
        lambda: DefaultPPORLModule.get_non_inference_attributes.__code__.co_consts.__contains__("vf"),
    )
    check("compute_values sig", lambda: params(D.compute_values) == ["self", "batch", "embeddings"])
    check("D._forward exists", lambda: "_forward" in vars(D))
    from ray.rllib.core.models.base import ActorCriticEncoder

    ae = src(ActorCriticEncoder)
    check(
        "ActorCriticEncoder attrs",
        lambda: all(s in ae for s in ["self.encoder = ", "self.actor_encoder = ", "self.critic_encoder = None"]),
    )
    from ray.rllib.core.models.torch.encoder import TorchMLPEncoder
    from ray.rllib.core.models.torch.heads import TorchMLPHead
    from ray.rllib.core.models.torch.primitives import TorchMLP

    check(
        "net/mlp/clip_log_std",
        lambda: (
            "self.net = TorchMLP(" in src(TorchMLPEncoder)
            and "self.net = TorchMLP(" in src(TorchMLPHead)
            and "self.clip_log_std = " in src(TorchMLPHead)
            and "self.mlp = nn.Sequential(" in src(TorchMLP.__init__)
        ),
    )
    from ray.rllib.core.columns import Columns

    check(
        "Columns",
        lambda: all(
            hasattr(Columns, n)
            for n in [
                "OBS",
                "ACTIONS",
                "ACTION_LOGP",
                "ACTION_DIST_INPUTS",
                "REWARDS",
                "LOSS_MASK",
                "VF_PREDS",
                "EMBEDDINGS",
                "TERMINATEDS",
                "TRUNCATEDS",
            ]
        ),
    )
    from ray.rllib.evaluation.postprocessing import Postprocessing

    check(
        "Postprocessing keys",
        lambda: (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS) == ("advantages", "value_targets"),
    )
    from ray.rllib.core.learner.torch.torch_learner import TorchLearner as TL

    check(
        "DDP wrap via add_module(override=True)",
        lambda: (
            "add_module(" in src(TL._make_modules_ddp_if_necessary)
            and "override=True" in src(TL._make_modules_ddp_if_necessary)
        ),
    )


def _connectorv2_gae(check):
    """ConnectorV2 / GAE."""
    from ray.rllib.algorithms.ppo.ppo_learner import PPOLearner

    pb = src(PPOLearner.build)
    from ray.rllib.connectors.connector_v2 import ConnectorV2

    check(
        "ConnectorV2.__init__ sig",
        lambda: params(ConnectorV2.__init__)[:3] == ["self", "input_observation_space", "input_action_space"],
    )
    check(
        "ConnectorV2.__call__ kw",
        lambda: (
            {"rl_module", "batch", "episodes", "kwargs"} <= set(params(ConnectorV2.__call__))
            and kinds(ConnectorV2.__call__)["rl_module"] == "KEYWORD_ONLY"
        ),
    )
    check(
        "single_agent_episode_iterator",
        lambda: "agents_that_stepped_only" in params(ConnectorV2.single_agent_episode_iterator),
    )
    from ray.rllib.connectors.learner.general_advantage_estimation import GeneralAdvantageEstimation as GAE

    gi = src(GAE.__init__)
    check(
        "GAE attrs",
        lambda: (
            all(
                s in gi
                for s in ["self.gamma = gamma", "self.lambda_ = lambda_", "self._numpy_to_tensor_connector = None"]
            )
            and {"gamma", "lambda_"} <= set(params(GAE.__init__))
        ),
    )
    from ray.rllib.connectors.connector_pipeline_v2 import ConnectorPipelineV2

    check(
        "pipeline remove by class name",
        lambda: (
            "c.__class__.__name__ == name_or_class" in src(ConnectorPipelineV2.remove)
            and callable(ConnectorPipelineV2.append)
        ),
    )
    from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor

    check("NumpyToTensor(device=, **kwargs)", lambda: {"device", "kwargs"} <= set(params(NumpyToTensor.__init__)))
    from ray.rllib.utils.postprocessing.zero_padding import unpad_data_if_necessary

    check("unpad sig", lambda: params(unpad_data_if_necessary)[:2] == ["episode_lens", "data"])
    check(
        "PPOLearner.build appends GAE",
        lambda: "GeneralAdvantageEstimation(" in pb and "add_default_connectors_to_learner_pipeline" in pb,
    )


def _torchdistribution_catalog(check):
    """TorchDistribution / catalog."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchDistribution as TD, TorchDeterministic

    check(
        "TD.__init__ sets _dist",
        lambda: "self._dist = self._get_torch_distribution(*args, **kwargs)" in src(TD.__init__),
    )
    check(
        "TD sample/rsample kw sample_shape",
        lambda: params(TD.sample) == ["self", "sample_shape"] and params(TD.rsample) == ["self", "sample_shape"],
    )
    check(
        "TD.logp/from_logits",
        lambda: params(TD.logp) == ["self", "value", "kwargs"] and params(TD.from_logits) == ["logits", "kwargs"],
    )
    check("TorchDeterministic(loc).loc", lambda: TorchDeterministic(loc=torch.zeros(1)).loc is not None)
    from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog

    check(
        "PPOCatalog pi head uses get_action_dist_cls + required_input_dim",
        lambda: all(
            s in src(PPOCatalog.build_pi_head)
            for s in ["self.get_action_dist_cls(framework=framework)", "required_input_dim(", "space=self.action_space"]
        ),
    )


def _algorithmconfig_private_attrs(check):
    """AlgorithmConfig private attrs."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.callbacks.callbacks import RLlibCallback
    from ray.rllib.core.rl_module.rl_module import RLModule

    c = AlgorithmConfig()
    for a in [
        "_env_to_module_connector",
        "_module_to_env_connector",
        "_learner_connector",
        "_torch_grad_scaler_class",
        "_torch_lr_scheduler_classes",
        "add_default_connectors_to_env_to_module_pipeline",
        "add_default_connectors_to_module_to_env_pipeline",
        "add_default_connectors_to_learner_pipeline",
        "torch_compile_learner",
        "torch_compile_worker",
        "torch_ddp_kwargs",
        "input_",
        "torch_skip_nan_gradients",
        "learner_config_dict",
        "count_steps_by",
        "grad_clip",
        "grad_clip_by",
        "log_gradients",
        "callbacks_class",
        "env_config",
        "normalize_actions",
        "num_gpus_per_learner",
        "num_learners",
    ]:
        check(f"AlgorithmConfig.{a}", lambda: hasattr(c, a))
    check("callbacks_class default", lambda: c.callbacks_class is RLlibCallback)
    check(
        "model_config property", lambda: isinstance(inspect.getattr_static(AlgorithmConfig, "model_config"), property)
    )
    from ray.rllib.algorithms.ppo import PPOConfig

    p = PPOConfig()
    check(
        "PPO per-module fields",
        lambda: all(
            hasattr(p, a)
            for a in [
                "clip_param",
                "use_critic",
                "vf_clip_param",
                "vf_loss_coeff",
                "use_kl_loss",
                "entropy_coeff",
                "kl_coeff",
                "lambda_",
            ]
        ),
    )
    check(
        "no clash society_config/sampler/row_ledger/society",
        lambda: not any(hasattr(p, a) for a in ["society_config", "sampler", "row_ledger", "society"]),
    )
    from ray.rllib.utils.checkpoints import Checkpointable

    check("ckpt file name", lambda: Checkpointable.CLASS_AND_CTOR_ARGS_FILE_NAME == "class_and_ctor_args.pkl")
    from ray.rllib.algorithms.algorithm import Algorithm

    check(
        "Algorithm ctor args = (config.get_state(),)",
        lambda: "(self.config.get_state(),)" in src(Algorithm.get_ctor_args_and_kwargs),
    )
    from ray.rllib.core import (
        COMPONENT_LEARNER_GROUP,
        COMPONENT_LEARNER,
        COMPONENT_RL_MODULE,
        DEFAULT_MODULE_ID,
        ALL_MODULES,
    )

    check(
        "component names",
        lambda: (
            (COMPONENT_LEARNER_GROUP, COMPONENT_LEARNER, COMPONENT_RL_MODULE, DEFAULT_MODULE_ID, ALL_MODULES)
            == ("learner_group", "learner", "rl_module", "default_policy", "__all_modules__")
        ),
    )
    check("RLModule.from_checkpoint", lambda: callable(getattr(RLModule, "from_checkpoint", None)))


def _torch(check):
    """torch."""
    from torch.optim.adam import Adam, adam

    adam_module = importlib.import_module("torch.optim.adam")  # the module (torch.optim.adam is the function)
    check(
        "adam() positional lists + kw",
        lambda: (
            params(adam)[:6] == ["params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs", "state_steps"]
            and {"fused", "amsgrad", "beta1", "beta2", "lr", "weight_decay", "eps", "maximize"} <= set(params(adam))
        ),
    )
    check(
        "Adam._init_group sig",
        lambda: (
            params(Adam._init_group)
            == [
                "self",
                "group",
                "params_with_grad",
                "grads",
                "exp_avgs",
                "exp_avg_sqs",
                "max_exp_avg_sqs",
                "state_steps",
            ]
        ),
    )
    check(
        "fused adam increments step itself",
        lambda: "torch._foreach_add_(device_state_steps, 1)" in src(adam_module._fused_adam),
    )
    pp = torch.nn.Parameter(torch.zeros(2))
    o = Adam([pp], fused=True)
    pp.grad = torch.ones(2)
    o.step()
    check(
        "Adam fused CPU state keys",
        lambda: (
            set(o.state[pp]) == {"step", "exp_avg", "exp_avg_sq"}
            and {"lr", "betas", "eps", "weight_decay", "maximize", "fused"} <= set(o.param_groups[0])
        ),
    )
    check("Tensor._base", lambda: torch.zeros(2, 2)[0]._base is not None)
    check("Module._parameters", lambda: "weight" in torch.nn.Linear(1, 1)._parameters)
    check(
        "register_state_dict_post_hook sig",
        lambda: params(torch.nn.Module.register_state_dict_post_hook) == ["self", "hook"],
    )


def collect_checks() -> list[tuple[str, bool, str]]:
    """(name, holds, why not) of every check; a section whose imports fail is one failed check."""
    checks = []

    def check(name, condition):
        try:
            checks.append((name, bool(condition()), ""))
        except Exception as error:  # noqa: BLE001  (any error means the API moved)
            checks.append((name, False, repr(error)))

    for section in (
        _multiagentenvrunner_envrunner,
        _metricslogger,
        _learner_torchlearner_ppo_learner,
        _multirlmodule_rlmodule_ppo_default_module,
        _connectorv2_gae,
        _torchdistribution_catalog,
        _algorithmconfig_private_attrs,
        _torch,
    ):
        try:
            section(check)
        except Exception as error:  # noqa: BLE001
            checks.append((f"{section.__doc__} (section)", False, repr(error)))
    return checks


CHECKS = collect_checks()


@pytest.mark.parametrize("name, holds, why", CHECKS, ids=[name for name, _, _ in CHECKS])
def test_the_api_the_fast_path_relies_on_is_there(name, holds, why):
    assert holds, f"{name}: {why or 'no longer holds'} (see docs/design.md, private APIs)"
