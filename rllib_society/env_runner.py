"""The society's fast env runner: RLlib's `MultiAgentEnvRunner` for `SocietyEnv`, sampling through
one batched forward pass of all primitives per step instead of RLlib's per-agent connectors and
episodes (whose cost grows with every agent id).

It steps the `AuctionEnv` inside each of its vector of `SocietyEnv`s with the whole bid vector, and
hands the learner `AuctionChunk`s: an episode's consecutive auctions as columns, each with its
exact utility as its reward. An auction's utility needs the next auction's bids, so at a cut the
last auction of a running episode is not handed over but carried into the next chunk of its
episode: nothing is dropped, for any fragment length or batch mode.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
)

from rllib_society.auction_env import AUCTION_INFO, AuctionEnv, primitive_name, record_utilities
from rllib_society.bidder import TorchBeta


@dataclass
class AuctionChunk:
    """Consecutive auctions of one episode of one society, as columns (bidder k * clones + c is
    clone c of primitive k): what the fast path hands the learner in place of RLlib's episodes.

    Every row's utility is exact: a chunk holds only auctions whose next bids are known (or that
    ended their episode).
    """

    id_: str
    """The episode's id, shared by all its chunks."""
    obs: np.ndarray
    """(T, *obs_shape) the state each auction was for."""
    bids: np.ndarray
    """(T, bidders) the bids (those of bidders sitting out are ignored)."""
    logp: np.ndarray
    """(T, bidders) their log-probabilities under the sampling policy."""
    bid_inputs: np.ndarray
    """(T, primitives, 2) each primitive's bid-distribution inputs."""
    utilities: np.ndarray
    """(T, bidders) each bidder's exact auction utility: its reward."""
    active: np.ndarray
    """(bidders,) False for a bidder sitting out the episode."""
    records: list[dict] = field(repr=False)
    """The auction records (`AuctionEnv` infos) of the rows."""
    is_done: bool = False
    """Whether the chunk ends its episode."""
    sampled_steps: int = 0
    """Auctions its episode ran since its previous chunk: what the `sample()` call that returned
    it stepped (with complete episodes, the whole episode)."""
    pricing: dict | None = None
    """With ``truncation: bootstrap``, the record of the auction that priced the cut state: it
    set the last row's lookahead, and is not a row itself (its bids earned nothing)."""

    def __len__(self) -> int:
        return len(self.bids)

    def slice(self, rows: slice, len_lookback_buffer: int | None = None) -> AuctionChunk:
        """Rows `rows` (a step-1 slice) as a chunk of the same episode: how RLlib's learner group
        shards episodes across learners. The episode's end (``is_done``, the cut's ``pricing``)
        and the sampled-step count stay with the piece that holds the last row, so shards add
        up to the chunk. Bidders are memoryless: no lookback is needed."""
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise ValueError(f"an AuctionChunk slices with step 1, got {step}.")
        last = stop == len(self)
        return dataclasses.replace(
            self, obs=self.obs[start:stop], bids=self.bids[start:stop], logp=self.logp[start:stop],
            bid_inputs=self.bid_inputs[start:stop], utilities=self.utilities[start:stop],
            records=self.records[start:stop], is_done=self.is_done and last,
            sampled_steps=self.sampled_steps if last else 0, pricing=self.pricing if last else None,
        )

    def __getitem__(self, rows: slice) -> AuctionChunk:
        return self.slice(rows)

    def env_steps(self) -> int:
        """Auctions sampled for this chunk (RLlib's env steps of a society)."""
        return self.sampled_steps

    def agent_steps(self) -> int:
        """Bids sampled for this chunk: auctions x active bidders."""
        return self.sampled_steps * int(self.active.sum())

    def get_return(self) -> float:
        """The sum of the rows' utilities over the active bidders."""
        return float(self.utilities[:, self.active].sum())

    def get_infos(self, index: int) -> dict:
        """The info of a step, as a single-agent episode's (``get_infos(-1)``: the last, which is
        the pricing auction's when the episode was cut and priced)."""
        records = self.records + ([self.pricing] if self.pricing is not None else [])
        return {AUCTION_INFO: records[index]}


@dataclass
class _OpenEpisode:
    """The rows of a running episode not yet handed to the learner."""

    id_: str = field(default_factory=lambda: uuid.uuid4().hex)
    rows: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    started: float = field(default_factory=time.perf_counter)
    length: int = 0
    total: float = 0.0
    sampled: int = 0


class SocietyEnvRunner(MultiAgentEnvRunner):
    """Samples a vector of societies with one forward pass of the `SocietyMultiRLModule` per
    step. Set by `SocietyPPOConfig`; RLlib's settings keep their meaning
    (``num_envs_per_env_runner``, ``rollout_fragment_length``, ``batch_mode``, ``explore``)."""

    def __init__(self, config, **kwargs):
        super().__init__(config=config, **kwargs)
        self._open: list[_OpenEpisode] = []
        self._obs: list[np.ndarray] = []

    @property
    def auction_envs(self) -> list[AuctionEnv]:
        return [env.unwrapped.auction_env for env in self.env.envs]

    @override(MultiAgentEnvRunner)
    def _sample(self, *, num_timesteps=None, num_episodes=None, explore: bool, random_actions=False,
                force_reset=False) -> list[AuctionChunk]:
        envs = self.auction_envs
        if force_reset or self._needs_initial_reset or not self._open:
            self._reset(envs, seed=self._seed if self._needs_initial_reset else None)
            self._needs_initial_reset = False
        complete = num_episodes is not None
        chunks, steps, finished = [], 0, 0
        while (steps < num_timesteps) if not complete else (finished < num_episodes):
            bids, logp, inputs = self._bid(np.stack(self._obs), envs[0].clones, explore, random_actions)
            for i, env in enumerate(envs):
                episode = self._open[i]
                for key, value in (("obs", self._obs[i]), ("bids", bids[i]), ("logp", logp[i]),
                                   ("bid_inputs", inputs[i])):
                    episode.rows[key].append(value)
                self._obs[i], _, terminated, truncated, info = env.step(bids[i])
                episode.rows["records"].append(info[AUCTION_INFO])
                episode.sampled += 1
                if terminated or truncated:
                    chunks.append(self._chunk(env, episode, done=True))
                    self._end_episode(env, episode, chunks[-1], i)
                    finished += 1
                    self._open[i] = _OpenEpisode()
                    self._obs[i], _ = env.reset()
            steps += len(envs)
        if not complete:
            chunks += [self._chunk(env, episode, done=False) for env, episode in zip(envs, self._open)]
        self._log_sampled(steps, finished, chunks, envs[0])
        return [chunk for chunk in chunks if len(chunk) or chunk.sampled_steps]

    def _reset(self, envs: list[AuctionEnv], seed: int | None) -> None:
        self._open = [_OpenEpisode() for _ in envs]
        self._obs = [env.reset(seed=None if seed is None else seed + i)[0] for i, env in enumerate(envs)]

    def _bid(self, obs: np.ndarray, clones: int, explore: bool, random_actions: bool):
        """(M, bidders) bids and log-probabilities, and (M, N, 2) bid inputs, for M states."""
        with torch.no_grad():
            inputs = self.module.bid_inputs(torch.as_tensor(obs))
            if random_actions:
                inputs = torch.zeros_like(inputs)  # uniform bids
            dist = TorchBeta.from_logits(inputs.repeat_interleave(clones, dim=1))
            bids = dist.sample() if explore else dist.to_deterministic().loc
            logp = dist.logp_each(bids)
        return bids[..., 0].numpy(), logp[..., 0].numpy(), inputs.numpy()

    def _chunk(self, env: AuctionEnv, episode: _OpenEpisode, done: bool) -> AuctionChunk:
        """The episode's unreported rows whose utilities are known: all of them if it is done,
        else all but the last, which stays open for the next chunk."""
        rows, records = episode.rows, episode.rows["records"]
        utilities = record_utilities(records, env.config["auction"]) if records else np.zeros((0, env.num_bidders))
        ready = len(records) if done else max(len(records) - 1, 0)
        # A cut's pricing auction (truncation: bootstrap) set the cut auction's lookahead; its own
        # bids earned nothing and are not trained.
        train = ready - int(done and ready > 0 and bool(records[ready - 1].get("pricing")))
        columns = {key: np.asarray(rows[key][:train], dtype=np.float32) for key in ("obs", "bids", "logp", "bid_inputs")}
        chunk = AuctionChunk(
            id_=episode.id_, **columns,
            utilities=utilities[:train].astype(np.float32), active=env.active.copy(),
            records=records[:train], is_done=done, sampled_steps=episode.sampled,
            pricing=records[train] if train < ready else None,
        )
        for key in rows:
            del rows[key][:ready]
        episode.length += episode.sampled
        episode.total += chunk.get_return()
        episode.sampled = 0
        return chunk

    def _end_episode(self, env: AuctionEnv, episode: _OpenEpisode, chunk: AuctionChunk, index: int) -> None:
        self._log_episode_metrics(episode.length, episode.total, time.perf_counter() - episode.started)
        make_callback(
            "on_episode_end", callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_episode_end,
            kwargs=dict(episode=chunk, env_runner=self, metrics_logger=self.metrics,
                        env=self.env.unwrapped, rl_module=self.module, env_index=index,
                        prev_episode_chunks=[]),
        )

    def _log_sampled(self, steps: int, finished: int, chunks: list[AuctionChunk], env: AuctionEnv) -> None:
        """RLlib's sampling counters, once per `sample()` call (RLlib's runner logs them per agent
        and step)."""
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, steps, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, steps, reduce="lifetime_sum", with_throughput=True)
        self.metrics.log_value(NUM_EPISODES, finished, reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, finished, reduce="lifetime_sum")
        per_primitive = np.zeros(env.num_primitives)
        for chunk in chunks:
            per_primitive += chunk.sampled_steps * chunk.active.reshape(env.num_primitives, env.clones).sum(axis=1)
        for k, count in enumerate(per_primitive):
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, primitive_name(k)), int(count), reduce="sum")
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, primitive_name(k)), int(count),
                                   reduce="lifetime_sum")
