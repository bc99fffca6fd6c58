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
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.annotations import override
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

from rllib_society.auction_env import AUCTION_INFO, AuctionEnv, primitive_name, record_settlement
from rllib_society.exploration import scheduled_rate
from rllib_society.rows import SAMPLED, RowEntry, RowLedger, entries_of
from rllib_society.society_module import bid_distribution_of


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
    scored_targets: np.ndarray
    """(T, bidders) the value of the step for the bidders a scored offer scored (their target),
    NaN for every other (`record_settlement`)."""
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
            scored_targets=self.scored_targets[start:stop],
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

    def row_entries(self) -> list[RowEntry]:
        """The identities of the chunk's rows (`rllib_society.rows`): every active bidder's bid
        at each of its auctions."""
        steps = np.array([record["step"] for record in self.records], dtype=np.int64)
        return entries_of(self.id_, steps, np.broadcast_to(self.active, (len(steps), len(self.active))))

    def get_infos(self, index: int) -> dict:
        """The info of a step, as a single-agent episode's (``get_infos(-1)``: the last, which is
        the pricing auction's when the episode was cut and priced)."""
        records = self.records + ([self.pricing] if self.pricing is not None else [])
        return {AUCTION_INFO: records[index]}


@dataclass
class AuctionEpisode:
    """A running episode of one society on the fast path, as its ``on_episode_*`` callbacks get
    it in place of RLlib's `MultiAgentEpisode` (a society's rows reach the learner as
    `AuctionChunk`s with the same id; the episode keeps only what is not handed over yet).

    What a callback can read: ``id_``, ``env_index``, ``custom_data`` (a dict for the callback's
    own use, as RLlib's episodes have), ``len(episode)`` (auctions so far), ``get_infos(-1)``
    (the last step's info: its auction record), ``get_return()`` (the utilities of the rows
    handed over so far) and ``is_done``."""

    env_index: int = 0
    id_: str = field(default_factory=lambda: uuid.uuid4().hex)
    custom_data: dict = field(default_factory=dict)
    is_done: bool = False
    rows: dict[str, list] = field(default_factory=lambda: defaultdict(list), repr=False)
    """The rows not yet handed to the learner, by `AuctionChunk` column."""
    started: float = field(default_factory=time.perf_counter, repr=False)
    length: int = 0
    total: float = 0.0
    sampled: int = 0
    """Auctions stepped since the episode's last chunk."""
    last_record: dict | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.length + self.sampled

    def env_steps(self) -> int:
        return len(self)

    def get_return(self) -> float:
        return self.total

    def get_infos(self, index: int = -1) -> dict:
        """The info of the last step (``index=-1``; earlier steps are in the chunks)."""
        if index != -1:
            raise IndexError(f"an AuctionEpisode keeps its last step's info only (index -1), got {index}.")
        return {} if self.last_record is None else {AUCTION_INFO: self.last_record}


#: The episode callbacks the fast path makes, where RLlib's runner makes them.
EPISODE_CALLBACKS = ("on_episode_created", "on_episode_start", "on_episode_step", "on_episode_end")


class SocietyEnvRunner(MultiAgentEnvRunner):
    """Samples a vector of societies with one forward pass of the `SocietyMultiRLModule` per
    step. Set by `SocietyPPOConfig`. RLlib's settings keep their meaning: ``num_envs_per_env_runner``,
    ``rollout_fragment_length``, ``batch_mode``, ``count_steps_by``, ``explore``, and the
    ``on_episode_*`` and ``on_sample_end`` callbacks, which get an `AuctionEpisode` (those
    it cannot honour, `SocietyPPOConfig.validate` refuses)."""

    def __init__(self, config, **kwargs):
        super().__init__(config=config, **kwargs)
        self._open: list[AuctionEpisode] = []
        self._obs: list[np.ndarray] = []
        # Only the callbacks someone defined are made (one per env step costs).
        self._episode_callbacks = {name: _defined(name, self._callbacks, getattr(self.config, f"callbacks_{name}"))
                                   for name in EPISODE_CALLBACKS}
        ledger = getattr(self.config, "row_ledger", None)
        self._ledger = RowLedger(ledger, SAMPLED) if ledger else None

    @property
    def auction_envs(self) -> list[AuctionEnv]:
        return [env.unwrapped.auction_env for env in self.env.envs]

    @override(MultiAgentEnvRunner)
    def _sample(self, *, num_timesteps=None, num_episodes=None, explore: bool, random_actions=False,
                force_reset=False) -> list[AuctionChunk]:
        envs = self.auction_envs
        rate, bonus = envs[0].exploration["rate"], envs[0].exploration["bonus"]
        steps = self.num_env_steps_sampled_lifetime  # schedules follow the algorithm's (synced each iteration)
        rate, bonus = scheduled_rate(rate, steps), scheduled_rate(bonus, steps)
        for env in envs:
            env.exploration_rate, env.bonus = rate, bonus
        with self.module.tied():
            if force_reset or self._needs_initial_reset or not self._open:
                self._reset(envs, seed=self._seed if self._needs_initial_reset else None)
                self._needs_initial_reset = False
            chunks, steps, finished = self._step_until(envs, num_timesteps, num_episodes, explore, random_actions)
        self._log_sampled(steps, finished, chunks, envs[0])
        chunks = [chunk for chunk in chunks if len(chunk) or chunk.sampled_steps]
        if self._ledger is not None:
            self._ledger.record([entry for chunk in chunks for entry in chunk.row_entries()])
        return chunks

    def _step_until(self, envs: list[AuctionEnv], num_timesteps, num_episodes, explore: bool, random_actions: bool):
        """Steps every society until `num_timesteps` (env or agent steps, ``count_steps_by``)
        or `num_episodes` episodes; returns the chunks, env steps and finished episodes."""
        complete = num_episodes is not None
        scale = self.module.value_scale()
        if scale is not None:  # random-price offers are priced around the society's values
            for env in envs:
                env.value_scale = scale
        by_agents = self.config.count_steps_by == "agent_steps"
        chunks, steps, counted, finished = [], 0, 0, 0
        mean_lookahead = envs[0].mean_lookahead
        # Bids on the real line are trained in units of the value scale, auctioned in env units.
        env_units = (lambda x: x) if scale is None else (lambda x: scale[0] + scale[1] * x)  # noqa: E731
        while (counted < num_timesteps) if not complete else (finished < num_episodes):
            bids, logp, inputs, means = self._bid(np.stack(self._obs), envs[0].clones, explore, random_actions,
                                                  scale, mean_lookahead)
            auctioned = env_units(bids)
            for i, env in enumerate(envs):
                if mean_lookahead:
                    env.lookahead_bids = env_units(means[i])
                episode = self._open[i]
                for key, value in (("obs", self._obs[i]), ("bids", bids[i]), ("logp", logp[i]),
                                   ("bid_inputs", inputs[i])):
                    episode.rows[key].append(value)
                self._obs[i], _, terminated, truncated, info = env.step(auctioned[i])
                episode.last_record = info[AUCTION_INFO]
                episode.rows["records"].append(episode.last_record)
                episode.sampled += 1
                counted += int(env.active.sum()) if by_agents else 1
                self._callback("on_episode_step", episode, i)
                if terminated or truncated:
                    episode.is_done = True
                    chunks.append(self._chunk(env, episode))
                    self._end_episode(episode, i)
                    finished += 1
                    self._start_episode(env, i)
            steps += len(envs)
        if not complete:
            chunks += [self._chunk(env, episode) for env, episode in zip(envs, self._open)]
        return chunks, steps, finished

    def _reset(self, envs: list[AuctionEnv], seed: int | None) -> None:
        self._open, self._obs = [None] * len(envs), [None] * len(envs)
        for i, env in enumerate(envs):
            self._start_episode(env, i, seed=None if seed is None else seed + i)

    def _start_episode(self, env: AuctionEnv, index: int, seed: int | None = None) -> None:
        self._open[index] = AuctionEpisode(env_index=index)
        self._callback("on_episode_created", self._open[index], index)
        self._obs[index], _ = env.reset(seed=seed)
        self._callback("on_episode_start", self._open[index], index)

    def _callback(self, name: str, episode: AuctionEpisode, index: int, **extra) -> None:
        """RLlib's ``on_episode_*`` callback `name`, if any is defined (with RLlib's arguments)."""
        if self._episode_callbacks[name]:
            make_callback(name, callbacks_objects=self._callbacks,
                          callbacks_functions=getattr(self.config, f"callbacks_{name}"),
                          kwargs=dict(episode=episode, env_runner=self, metrics_logger=self.metrics,
                                      env=self.env.unwrapped, rl_module=self.module, env_index=index, **extra))

    def _bid(self, obs: np.ndarray, clones: int, explore: bool, random_actions: bool,
             scale: tuple[float, float] | None = None, with_means: bool = False):
        """(M, bidders) bids and log-probabilities, (M, N, 2) bid inputs and, `with_means`
        (``lookahead: mean``), the (M, bidders) mean bids, for M states; `scale`: the module's
        value scale (bids on the real line), read once per `sample()` call."""
        with torch.no_grad():
            inputs = self.module.bid_inputs(torch.as_tensor(obs, device=self.module.device))
            if random_actions:
                inputs = torch.zeros_like(inputs)  # uniform bids (standard normal on the real line)
            dist = bid_distribution_of(scale).from_logits(inputs.repeat_interleave(clones, dim=1))
            means = dist.to_deterministic().loc if with_means or not explore else None
            bids = dist.sample() if explore else means
            logp = dist.logp_each(bids)
        first = lambda x: x[..., 0].cpu().numpy()  # noqa: E731
        return first(bids), first(logp), inputs.cpu().numpy(), first(means) if with_means else None

    def _chunk(self, env: AuctionEnv, episode: AuctionEpisode) -> AuctionChunk:
        """The episode's unreported rows whose utilities are known: all of them if it is done,
        else all but the last, which stays open for the next chunk."""
        done, rows, records = episode.is_done, episode.rows, episode.rows["records"]
        utilities, targets = (record_settlement(records, env.config["auction"], env.clones) if records
                              else (np.zeros((0, env.num_bidders)), np.zeros((0, env.num_bidders))))
        ready = len(records) if done else max(len(records) - 1, 0)
        # A cut's pricing auction (truncation: bootstrap) set the cut auction's lookahead; its own
        # bids earned nothing and are not trained.
        train = ready - int(done and ready > 0 and bool(records[ready - 1].get("pricing")))
        columns = {key: np.asarray(rows[key][:train], dtype=np.float32).reshape(train, *np.shape(rows[key][0]))
                   if rows[key] else np.zeros((0,), np.float32) for key in ("obs", "bids", "logp", "bid_inputs")}
        chunk = AuctionChunk(
            id_=episode.id_, **columns,
            utilities=utilities[:train].astype(np.float32), scored_targets=targets[:train].astype(np.float32),
            active=env.active.copy(),
            records=records[:train], is_done=done, sampled_steps=episode.sampled,
            pricing=records[train] if train < ready else None,
        )
        for key in rows:
            del rows[key][:ready]
        episode.length += episode.sampled
        episode.total += chunk.get_return()
        episode.sampled = 0
        return chunk

    def _end_episode(self, episode: AuctionEpisode, index: int) -> None:
        self._log_episode_metrics(episode.length, episode.total, time.perf_counter() - episode.started)
        self._callback("on_episode_end", episode, index, prev_episode_chunks=[])

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
        # A primitive's bidders are its module's agents: agent steps are counted per primitive,
        # which PPO reads with count_steps_by="agent_steps" (RLlib's runner: per agent id).
        for k, count in enumerate(per_primitive):
            for key, reduce in ((NUM_MODULE_STEPS_SAMPLED, "sum"), (NUM_MODULE_STEPS_SAMPLED_LIFETIME, "lifetime_sum"),
                                (NUM_AGENT_STEPS_SAMPLED, "sum"), (NUM_AGENT_STEPS_SAMPLED_LIFETIME, "lifetime_sum")):
                self.metrics.log_value((key, primitive_name(k)), int(count), reduce=reduce)


def _defined(name: str, callbacks: list, functions) -> bool:
    """Whether any callback object overrides RLlib's no-op `name`, or functions are registered."""
    return bool(functions) or any(getattr(type(c), name, None) is not getattr(RLlibCallback, name) for c in callbacks)
