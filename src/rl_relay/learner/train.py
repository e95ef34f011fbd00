"""One training iteration: build or restore, learn up to this iteration's target, save.

Iteration ``i`` of ``k`` trains until the timestep counter reaches ``(i + 1) *
total_timesteps``, with schedules over ``k * total_timesteps``; a preemption signal stops
it at the next safe point (before a rollout: after the previous update, before any env
step), where it checkpoints and exits 3. Split or not, interrupted or not, the same steps
happen in the same order with the same random numbers, so the result is bit-identical.

Not exact: CUDA kernels (nondeterministic reductions; run on CPU for exactness), a
different number of torch threads between processes, ``use_sde`` (its noise is resampled
before the safe point) and action noise with state (TD3's Ornstein-Uhlenbeck noise is
reset by every ``learn()`` call).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, make_output_format

from rl_relay import exit_codes
from rl_relay.job.reward import evaluation_points, last_number
from rl_relay.layout import PROGRESS_FILE
from rl_relay.learner import checkpoint
from rl_relay.learner.algorithms import ALGORITHMS, ON_POLICY, constructor_kwargs
from rl_relay.learner.envs import eval_env_seed, make_eval_env, make_training_env
from rl_relay.learner.resume import checkpoint_meta, continue_restored
from rl_relay.metrics import (
    DEFAULT_REWARD_COLUMN,
    EPISODE_LENGTH_COLUMN,
    EVAL_MEAN_REWARD,
    EVAL_STD_REWARD,
    TIMESTEPS_COLUMN,
)

logger = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised at a safe point after a preemption signal arrived."""


class PreemptionCallback(BaseCallback):
    """Stops training at the start of a rollout once ``stop`` holds a signal."""

    def __init__(self, stop: list[int]) -> None:
        super().__init__()
        self.stop = stop

    def _on_rollout_start(self) -> None:
        if self.stop:
            raise Preempted

    def _on_step(self) -> bool:
        return True


class EvaluationCallback(BaseCallback):
    """Evaluates as soon as the timestep counter reaches each point not yet passed.

    The evaluation runs its own env and the policy's deterministic action (no random draw),
    so training goes on exactly as without it; ``progress.csv`` gets one ``eval/*`` row per
    point. A run resumed past a point does not evaluate there again.
    """

    def __init__(self, configs: dict[str, Any], points: list[int], start: int) -> None:
        super().__init__()
        self.configs = configs
        self.points = [p for p in points if p > start]

    def _on_step(self) -> bool:
        while self.points and self.num_timesteps >= self.points[0]:
            self.points.pop(0)
            evaluate(self.model, self.configs)
        return True


class AppendingCSVOutputFormat(CSVOutputFormat):
    """SB3's CSV writer, continuing an existing progress.csv instead of truncating it.

    A step continued after a preemption writes into the same log directory.
    """

    def __init__(self, filename: str) -> None:
        path = Path(filename)
        if not path.exists() or path.stat().st_size == 0:
            super().__init__(filename)
            return
        self.file = open(path, "r+")  # noqa: SIM115 (closed by close())
        header = self.file.readline().rstrip("\n")
        self.keys = header.split(",") if header else []
        self.separator = ","
        self.quotechar = '"'
        self.file.seek(0, os.SEEK_END)


def make_logger(log_path: str, formats: list[str]) -> Logger:
    Path(log_path).mkdir(parents=True, exist_ok=True)
    outputs = [
        AppendingCSVOutputFormat(str(Path(log_path) / PROGRESS_FILE))
        if fmt == "csv"
        else make_output_format(fmt, log_path)
        for fmt in dict.fromkeys(["csv", *formats])
    ]
    return Logger(folder=log_path, output_formats=outputs)


def build_model(configs: dict[str, Any], cpus: int) -> Any:
    rl, common, env_config = (
        configs["rl_config"],
        configs["rl_common_config"],
        configs["env_config"],
    )
    n_envs = env_config.get("n_envs") or cpus
    env = make_training_env(env_config, n_envs)
    algorithm = ALGORITHMS[rl["algorithm"]]
    return algorithm(
        env=env,
        seed=common["seed"],
        device=common.get("device", "cpu"),
        verbose=common.get("verbose", 0),
        **constructor_kwargs(rl),
    )


def evaluate(model: Any, configs: dict[str, Any]) -> None:
    """Deterministic evaluation on a separately seeded env, logged as eval/* in its own row."""
    from stable_baselines3.common.evaluation import evaluate_policy

    episodes = configs["rl_common_config"].get("eval_episodes", 10)
    if not episodes:
        return
    eval_env = make_eval_env(
        configs["env_config"], eval_env_seed(configs["rl_common_config"]), model.get_env()
    )
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
    eval_env.close()
    model.logger.record(EVAL_MEAN_REWARD, float(mean))
    model.logger.record(EVAL_STD_REWARD, float(std))
    model.logger.record(TIMESTEPS_COLUMN, model.num_timesteps)  # where on the curve
    model.logger.dump(model.num_timesteps)
    logger.info(
        "evaluation at %d timesteps over %d episodes: %.2f +- %.2f",
        model.num_timesteps,
        episodes,
        mean,
        std,
    )


def log_episode_statistics(model: Any, progress: Path) -> None:
    """A row with the recent episodes' mean return and length, when this iteration's
    ``progress.csv`` has none: SB3 logs them only every ``log_interval`` rollouts (every 4
    episodes for off-policy algorithms), so a short iteration, or one the previous
    iteration's last rollout already covered, would otherwise end without a reward.

    The row holds only these three values: what SB3 recorded for its next row stays pending
    (and goes into the checkpoint), so every other row is the one an unsplit training writes.
    """
    episodes = list(model.ep_info_buffer or [])
    if not episodes or last_number(progress, DEFAULT_REWARD_COLUMN) is not None:
        return
    sb3 = model.logger
    pending = checkpoint.pending_values(sb3)
    for d in (sb3.name_to_value, sb3.name_to_count, sb3.name_to_excluded):
        d.clear()
    sb3.record(DEFAULT_REWARD_COLUMN, sum(e["r"] for e in episodes) / len(episodes))
    sb3.record(EPISODE_LENGTH_COLUMN, sum(e["l"] for e in episodes) / len(episodes))
    sb3.record(TIMESTEPS_COLUMN, model.num_timesteps)
    sb3.dump(model.num_timesteps)  # writes and clears the row
    checkpoint.put_back_pending(sb3, pending)


def prepare(configs: dict[str, Any], cpus: int) -> tuple[Any, Logger, float | None]:
    """The model ready to learn (built, or restored and continued with these configs), its
    logger, and the seconds restoring took (None for a fresh start).

    A checkpoint the configs cannot continue is refused before anything is written.
    """
    rl, common = configs["rl_config"], configs["rl_common_config"]
    formats = common.get("log_formats", ["csv"])
    load_seconds = None
    if rl["load_path"]:
        restored = checkpoint.load(rl["load_path"])
        model = continue_restored(restored, configs, rl["load_path"])
        sb3_logger = make_logger(rl["log_path"], formats)
        model.set_logger(sb3_logger)
        restored.restore_pending(sb3_logger)
        load_seconds = restored.load_seconds
    else:
        sb3_logger = make_logger(rl["log_path"], formats)
        model = build_model(configs, cpus)
        model.set_logger(sb3_logger)
    model.relay_horizon = common["training_iterations"] * common["total_timesteps"]
    return model, sb3_logger, load_seconds


def train(configs: dict[str, Any], stop: list[int], cpus: int) -> int:
    """Run one training iteration; return the exit code (0 done, 3 checkpointed)."""
    rl, common = configs["rl_config"], configs["rl_common_config"]
    iteration, iterations = common["training_iteration"], common["training_iterations"]
    per_iteration = common["total_timesteps"]
    model, sb3_logger, load_seconds = prepare(configs, cpus)
    target = (iteration + 1) * per_iteration
    code = exit_codes.SUCCESS
    if model.num_timesteps < target:
        logger.info(
            "training %s from %d to %d timesteps (iteration %d of %d)",
            type(model).__name__,
            model.num_timesteps,
            target,
            iteration + 1,
            iterations,
        )
        points = evaluation_points(model.relay_horizon, common.get("evaluations", 1))
        callbacks = [
            PreemptionCallback(stop),
            EvaluationCallback(configs, points, model.num_timesteps),
        ]
        try:
            model.learn(
                total_timesteps=target - model.num_timesteps,
                callback=CallbackList(callbacks),
                reset_num_timesteps=False,
                log_interval=1 if rl["algorithm"] in ON_POLICY else 4,
                progress_bar=sys.stderr.isatty(),
            )
        except Preempted:
            logger.warning(
                "preempted at %d timesteps: checkpointing to resume", model.num_timesteps
            )
            code = exit_codes.RESUME
    if code == exit_codes.SUCCESS:
        log_episode_statistics(model, Path(rl["log_path"]) / PROGRESS_FILE)
    checkpoint.save(model, rl["save_path"], load_seconds, checkpoint_meta(configs))
    if code == exit_codes.SUCCESS and iteration + 1 >= iterations:
        evaluate(model, configs)
    sb3_logger.close()
    return code
