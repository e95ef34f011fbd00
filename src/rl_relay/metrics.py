"""The names of what a job reports to cluster_utils, and the default reward column.

Settings files (``metric_to_optimize``), the checks, the report, the re-evaluation and the
benchmarks refer to these names; they are the original ``hp_optim``'s and stay stable.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

#: Mean over the job's learning runs of each run's final ``reward_column`` value.
MEAN_REWARD = "mean_eprewmean"
#: Population std (as numpy.std) of the same values: the spread between seeds.
STD_REWARD = "std_eprewmean"
LEARNING_RUNS = "learning_runs"
FAILED_ATTEMPTS = "failed_attempts"
RESUMES = "resumes"
#: Env steps the job trained, all runs and attempts (the learner's timestep counter).
ENV_STEPS = "env_steps"
#: Training iterations its runs completed, summed over the runs.
ITERATIONS_DONE = "iterations_done"
#: 1 when the job ended before its last iteration (early stopping, PBT's stop), else 0.
STOPPED_EARLY = "stopped_early"
#: Added by cluster_utils' ``finalize_job``.
TIME_ELAPSED = "time_elapsed"

#: Everything a run_learning job reports, in the order it reports them.
REPORTED = (
    MEAN_REWARD,
    STD_REWARD,
    LEARNING_RUNS,
    FAILED_ATTEMPTS,
    RESUMES,
    ENV_STEPS,
    ITERATIONS_DONE,
    STOPPED_EARLY,
    TIME_ELAPSED,
)
#: What settings files optimise by default (with ``minimize: false``).
DEFAULT_METRIC = MEAN_REWARD
#: The ``progress.csv`` column whose last value is a run's reward, unless set otherwise.
DEFAULT_REWARD_COLUMN = "rollout/ep_rew_mean"
#: SB3's mean episode length over its recent episodes (beside ``DEFAULT_REWARD_COLUMN``).
EPISODE_LENGTH_COLUMN = "rollout/ep_len_mean"
#: The column of the learners' timestep counter in ``progress.csv``.
TIMESTEPS_COLUMN = "time/total_timesteps"
#: The columns of the default learner's evaluations (``rl_common_config.evaluations``).
EVAL_PREFIX = "eval/"
EVAL_MEAN_REWARD = EVAL_PREFIX + "mean_reward"
EVAL_STD_REWARD = EVAL_PREFIX + "std_reward"
#: cluster_utils' suffix for the std between jobs of one configuration (reduced_data.csv).
STD_SUFFIX = "__std"


def job_metrics(
    rewards: Sequence[float],
    failed_attempts: int,
    resumes: int,
    env_steps: int = 0,
    iterations_done: int = 0,
    stopped_early: bool = False,
) -> dict[str, float]:
    """What a job reports: mean and population std of its runs' rewards (a stopped job's:
    its scores at the last boundary it reached), and its counters."""
    return {
        MEAN_REWARD: statistics.fmean(rewards),
        STD_REWARD: statistics.pstdev(rewards),
        LEARNING_RUNS: len(rewards),
        FAILED_ATTEMPTS: failed_attempts,
        RESUMES: resumes,
        ENV_STEPS: env_steps,
        ITERATIONS_DONE: iterations_done,
        STOPPED_EARLY: int(stopped_early),
    }
