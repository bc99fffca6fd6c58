"""RLlib's multi-agent env runner, minus two costs that profiling found (RLlib 2.60).

1. `MultiAgentEnvRunner._sample` converts *every* episode finished so far in the call to numpy
   again at every vector-env step (the loop over ``done_episodes_to_return`` sits inside the
   stepping loop), and each repeat re-validates every agent's buffers: the cost grows with the
   square of the episodes per `sample()` call. With 4,096-step batches on Chain it was half of
   all sampling time. Converting an episode once is enough: after `to_numpy` no data may be
   added to it.
2. Every env step logs four step counters per agent into the MetricsLogger (a fifth of the
   remaining sampling time). They are sums, so counting locally and logging the totals once
   per `sample()` call gives the same metrics.
3. Each forward pass switches every bidder to eval mode and back (`TorchRLModule`), walking all
   its submodules twice. The sampling copies never train, and bidders have no dropout or batch
   norm, so they are put in eval mode once.
"""

from __future__ import annotations

from collections import Counter

from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
)


class NumpyOnceEpisode(MultiAgentEpisode):
    """A `MultiAgentEpisode` whose `to_numpy` converts once and is nearly free afterwards."""

    __slots__ = ()  # same layout as MultiAgentEpisode, so an episode's class can be switched

    def to_numpy(self) -> MultiAgentEpisode:
        if self.agent_episodes and self.is_numpy:
            return self
        return super().to_numpy()


class SocietyEnvRunner(MultiAgentEnvRunner):
    """`MultiAgentEnvRunner` that records episodes as `NumpyOnceEpisode`."""

    def make_module(self):
        super().make_module()
        if self.module is not None:
            self.module.foreach_module(lambda module_id, module: module.eval())

    def _new_episode(self, env_index, episodes=None):
        super()._new_episode(env_index, episodes)
        episodes = episodes if episodes is not None else self._ongoing_episodes
        episodes[env_index].__class__ = NumpyOnceEpisode

    def _sample(self, *args, **kwargs):
        self._counts = {"env": 0, "episodes": 0, "agents": Counter(), "modules": Counter()}
        sampled = super()._sample(*args, **kwargs)
        for episode in self._ongoing_episodes:  # the continuations `cut()` just made
            episode.__class__ = NumpyOnceEpisode
        self._log_sampled_counts()
        return sampled

    def _increase_sampled_metrics(self, num_steps, next_obs, episode):
        counts = self._counts
        counts["env"] += num_steps
        counts["episodes"] += int(episode.is_done)
        for aid in next_obs:
            counts["agents"][str(aid)] += 1
            counts["modules"][episode.module_for(aid)] += 1
        return num_steps

    def _log_sampled_counts(self) -> None:
        """Logs what `MultiAgentEnvRunner._increase_sampled_metrics` logs step by step."""
        counts, log = self._counts, self.metrics.log_value
        if counts["env"]:
            log(NUM_ENV_STEPS_SAMPLED, counts["env"], reduce="sum")
            log(NUM_ENV_STEPS_SAMPLED_LIFETIME, counts["env"], reduce="lifetime_sum", with_throughput=True)
        if counts["episodes"]:
            log(NUM_EPISODES, counts["episodes"], reduce="sum")
            log(NUM_EPISODES_LIFETIME, counts["episodes"], reduce="lifetime_sum")
        for key, (per_step, lifetime) in (
            ("agents", (NUM_AGENT_STEPS_SAMPLED, NUM_AGENT_STEPS_SAMPLED_LIFETIME)),
            ("modules", (NUM_MODULE_STEPS_SAMPLED, NUM_MODULE_STEPS_SAMPLED_LIFETIME)),
        ):
            for name, count in counts[key].items():
                log((per_step, name), count, reduce="sum")
                log((lifetime, name), count, reduce="lifetime_sum")
