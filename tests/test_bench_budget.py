"""The benchmark's fairness: every method gets the same env-step budget, what each search
really used is counted, and its choice is read back as it ran.

Nothing here trains; the whole pipeline is exercised by ``python bench/hpo_quality.py --quick``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from bench_helpers import PPO_SETTINGS, by_name, by_name_of, settings, small_space

from bench.hpo_quality.cost import expected_seconds, training_seconds
from bench.hpo_quality.outcome import (
    Outcome,
    job_env_steps,
    job_rewards,
    read_best_job,
    read_pick,
    search_jobs,
)
from bench.hpo_quality.runs import Search, reeval_params, rl_relay_settings
from bench.hpo_quality.space import restrict, space_of
from rl_relay.job.state import Plan, new_state
from rl_relay.job.state_file import save_state
from rl_relay.layout import JobPaths
from rl_relay.stopping.records import RungRecord, write_decision


def search(trials: int, budget: int, episodes: int, runs: int, seed: int, repeat: int) -> Search:
    s = settings(PPO_SETTINGS)
    return Search(
        "cartpole",
        "ppo",
        "CartPole-v1",
        PPO_SETTINGS,
        s,
        space_of(s),
        trials,
        budget,
        episodes,
        runs,
        "eval/mean_reward",
        2,
        seed,
        repeat,
    )


# -- the same budget for every method ----------------------------------------------------------


def test_rl_relay_search_gets_the_same_env_step_budget_as_the_zoo(tmp_path) -> None:
    search_ = search(16, 10_000, 10, 2, 101, 1)
    s = search_.settings
    out = rl_relay_settings(search_, "twopointsde", tmp_path, "search")
    assert out["optimization_setting"]["number_of_samples"] == 8  # 8 jobs x 2 runs = 16
    picked = rl_relay_settings(search_, "twopointsde+2x2", tmp_path, "search")
    assert picked["optimization_setting"]["number_of_samples"] == 6  # 6 x 2 + 2 x 2 = 16
    assert "config.rl_common_config.eval_seed" not in picked["fixed_params"]  # own episodes
    shared = rl_relay_settings(search_, "twopointsde~ce", tmp_path, "search")
    assert shared["fixed_params"]["config.rl_common_config.eval_seed"] == 101  # the search seed
    # ~free: no more configurations asked ahead of their results than there are workers
    wide = dataclasses.replace(search_, trials=32, runs_per_job=1)
    ahead = rl_relay_settings(wide, "tpe~ce", tmp_path, "search")["optimization_setting"]
    assert ahead["n_jobs_per_iteration"] == 8  # a quarter of the 32 jobs
    free = rl_relay_settings(wide, "tpe~ce~free", tmp_path, "search")
    assert free["optimization_setting"]["n_jobs_per_iteration"] == wide.workers
    assert free["optimization_setting"]["number_of_samples"] == 32
    assert free["fixed_params"]["config.rl_common_config.eval_seed"] == 101
    # tpe: the zoo's 10 random start trials, or its share of them when there are fewer jobs
    zoo_like = dataclasses.replace(search_, runs_per_job=1)
    startup = rl_relay_settings(zoo_like, "tpe~ce", tmp_path, "search")["optimizer_settings"]
    assert startup == {"n_startup_trials": 10, "multivariate": True, "seed": 101}
    two_runs = rl_relay_settings(search_, "tpe@2~ce", tmp_path, "search")
    assert two_runs["optimization_setting"]["number_of_samples"] == 8
    assert two_runs["optimizer_settings"]["n_startup_trials"] == 5  # 10 of 16 -> 5 of 8
    assert "reward_window" not in two_runs["fixed_params"]  # the final evaluation scores
    late = rl_relay_settings(search_, "tpe@2~ce~late", tmp_path, "search")["fixed_params"]
    assert (late["config.rl_common_config.evaluations"], late["reward_window"]) == (5, 3)
    # ... but every choice is re-evaluated by its final evaluation, on its own episodes
    again = reeval_params(search_, {"config.rl_config.gamma": 0.9}, 3, 7, tmp_path)
    assert (again["reward_column"], again.get("reward_window", 1)) == ("eval/mean_reward", 1)
    assert again.get("config.rl_common_config.evaluations", 1) == 1
    assert (again["config.rl_common_config.eval_seed"], again["seed"]) == (None, 7)
    assert again["config.rl_config.gamma"] == 0.9 and again["learning_runs_per_job"] == 3
    assert (out["optimizer_str"], out["optimizer_settings"]) == (
        "nevergrad",
        {"opt_alg": "twopointsde"},
    )
    fixed = out["fixed_params"]
    assert fixed["config.rl_common_config.total_timesteps"] == 10_000
    assert (fixed["seed"], fixed["learning_runs_per_job"], fixed["training_iterations"]) == (
        101,
        2,
        1,
    )
    assert out["cluster_requirements"]["max_cpus"] == 2 and not out["remove_working_dirs"]
    assert (
        s["fixed_params"]["learning_runs_per_job"]
        == settings(PPO_SETTINGS)["fixed_params"]["learning_runs_per_job"]
    )  # the shared settings are not changed


def test_dgd_searches_ordered_grids_over_the_same_ranges(tmp_path) -> None:
    search_ = search(8, 1_000, 5, 1, 100, 0)
    out = rl_relay_settings(search_, "dgd", tmp_path, "search")
    assert (out["optimizer_str"], out["optimizer_settings"]) == ("dgd", {"seed": 100})
    grids = by_name_of(out)
    assert all(p.kind == "categorical" for p in grids.values())
    lr = grids["learning_rate"].options
    assert (len(lr), lr[0], lr[-1]) == (7, 1e-5, 0.002) and list(lr) == sorted(lr)
    assert lr[3] == pytest.approx(math.sqrt(1e-5 * 0.002), rel=1e-2)  # log-spaced
    assert grids["max_grad_norm"].options[3] == pytest.approx(1.15)  # linear
    assert grids["n_steps"].options == by_name(PPO_SETTINGS)["n_steps"].options
    genetic = rl_relay_settings(search_, "genetic", tmp_path, "search")["optimizer_settings"]
    assert genetic["population_size"] == 2 and genetic["seed"] == 100


def test_cost_model_charges_small_minibatches_and_rollout_rounding() -> None:
    base = {"n_steps": 32, "batch_size": 256, "n_epochs": 10, "policy_kwargs": {"net_arch": [64]}}
    cheap = training_seconds("ppo", base, 10_000, 8)
    assert training_seconds("ppo", {**base, "batch_size": 4}, 10_000, 8) > 3 * cheap
    # 4096 x 8 = 32k steps for a 10k budget: one whole rollout, more than 3x the steps
    assert training_seconds("ppo", {**base, "n_steps": 4096}, 10_000, 8) > cheap
    full = space_of(settings(PPO_SETTINGS))
    quick = space_of(restrict(settings(PPO_SETTINGS), {"config.rl_config.batch_size": (64, 256)}))
    assert (
        expected_seconds("ppo", quick, {}, 10_000, 8)[0]
        < expected_seconds("ppo", full, {}, 10_000, 8)[0]
    )


# -- counting what a search used -------------------------------------------------------------


def write_progress(path: Path, steps: list[int], eval_row: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["rollout/ep_rew_mean,time/total_timesteps,eval/mean_reward"]
    lines += [f"20.0,{s}," for s in steps] + ([",,500.0"] if eval_row else [])
    path.write_text("\n".join(lines) + "\n")


def test_job_env_steps_counts_failed_attempts_and_chained_iterations_once(tmp_path) -> None:
    write_progress(tmp_path / "run_0.0-0" / "logs" / "progress.csv", [256, 512], eval_row=False)
    write_progress(tmp_path / "run_0.0-1" / "logs" / "progress.csv", [512, 1024])
    write_progress(tmp_path / "run_1.0-0" / "logs" / "progress.csv", [1024])
    write_progress(tmp_path / "run_1.1-0" / "logs" / "progress.csv", [1536, 2048])
    (tmp_path / "not_a_run").mkdir()
    assert job_env_steps(tmp_path) == 512 + 1024 + 2048


def test_off_policy_steps_come_from_the_checkpoint_info_when_the_log_lags(tmp_path) -> None:
    # SAC logs every 4 episodes: progress.csv says 800 of the 1,000 steps trained
    write_progress(tmp_path / "run_0.0-0" / "logs" / "progress.csv", [800])
    (tmp_path / "run_0.0-0" / "model.resume.json").write_text('{"num_timesteps": 1000}')
    write_progress(tmp_path / "run_1.0-0" / "logs" / "progress.csv", [800])
    (tmp_path / "run_1.0-0" / "model.resume.json").write_text("{half-written")
    assert job_env_steps(tmp_path) == 1000 + 800


# -- what a search chose, and how its choice re-evaluated ------------------------------------


def test_best_job_is_the_first_row_with_the_metric_and_overrides_in_template_types(
    tmp_path,
) -> None:
    all_data = tmp_path / "all_data.csv"
    all_data.write_text(
        ",_id,config.rl_config.n_steps,config.rl_config.policy_kwargs.activation_fn,"
        "config.rl_config.gamma,mean_eprewmean\n"
        "0,3,64.0,relu,0.99,\n"
        "1,5,32,tanh,0.97,250.5\n"
        "2,1,64,relu,0.97,100.0\n"
    )
    estimate, overrides = read_best_job(all_data, small_space(), "mean_eprewmean")
    assert estimate == 250.5
    assert overrides == {
        "config.rl_config.n_steps": 32,
        "config.rl_config.policy_kwargs.activation_fn": "tanh",
        "config.rl_config.gamma": 0.97,
    }


def test_with_early_stopping_the_best_job_is_the_best_one_trained_to_the_end(tmp_path) -> None:
    """A stopped job's score is from a rung, not the end: the pick is among finished jobs
    (as the zoo picks among complete trials), whichever way cluster_utils wrote the 0/1."""
    all_data = tmp_path / "all_data.csv"
    all_data.write_text(
        ",_id,config.rl_config.n_steps,config.rl_config.policy_kwargs.activation_fn,"
        "config.rl_config.gamma,mean_eprewmean,stopped_early\n"
        "0,3,64,relu,0.99,300.0,1.0\n"
        "1,4,64,relu,0.99,290.0,True\n"
        "2,6,64,relu,0.99,280.0,\n"
        "3,5,32,tanh,0.97,250.5,0.0\n"
        "4,1,64,relu,0.97,100.0,False\n"
    )
    assert read_best_job(all_data, small_space(), "mean_eprewmean")[0] == 300.0
    estimate, overrides = read_best_job(all_data, small_space(), "mean_eprewmean", True)
    assert estimate == 250.5 and overrides["config.rl_config.n_steps"] == 32
    jobs = search_jobs(all_data, "mean_eprewmean", space=small_space())
    assert [j["stopped_early"] for j in jobs] == [False, True, True, False, False]
    # each saved job keeps its configuration, so another pick rule can be re-evaluated later
    assert {j["id"]: j["overrides"] for j in jobs}[5] == {
        "config.rl_config.n_steps": 32,
        "config.rl_config.policy_kwargs.activation_fn": "tanh",
        "config.rl_config.gamma": 0.97,
    }


def test_the_saved_search_keeps_every_job_by_id_with_its_score_steps_and_stop(tmp_path) -> None:
    # all_data.csv is written best first; a job that reported no reward keeps its place
    all_data = tmp_path / "all_data.csv"
    all_data.write_text(
        ",_id,mean_eprewmean,env_steps,iterations_done,stopped_early\n"
        "0,10,250.5,4096,4,0\n"
        "1,2,120.0,2048.0,2,1.0\n"
        "2,7,,1024,1,0\n"
    )
    records = tmp_path / "early_stopping"
    decided = [(2, 1, 90.0, "continue"), (2, 2, 120.0, "stop"), (10, 1, 150.0, "continue")]
    for job, rung, score, decision in [*decided, (10, 2, None, "continue")]:
        write_decision(records, RungRecord(job, rung, "asha", score, decision, "test"))
    jobs = search_jobs(all_data, "mean_eprewmean", records)
    assert [(j["id"], j["score"], j["env_steps"], j["iterations_done"]) for j in jobs] == [
        (2, 120.0, 2048, 2),
        (7, None, 1024, 1),
        (10, 250.5, 4096, 4),
    ]
    assert [j["stopped_early"] for j in jobs] == [True, False, False]
    assert [j["rungs"] for j in jobs] == [{"1": 90.0, "2": 120.0}, {}, {"1": 150.0, "2": None}]
    assert [j["rungs"] for j in search_jobs(all_data, "mean_eprewmean")] == [{}, {}, {}]
    outcome = Outcome("pendulum", "tpe~ce~late~fit~ashahalf%95", 0, jobs=jobs)
    assert Outcome.from_json(outcome.to_json()).jobs == jobs
    # a JSON saved before the field existed still loads, with no jobs
    old = {k: v for k, v in outcome.to_json().items() if k != "jobs"}
    assert Outcome.from_json(old).jobs == []


def test_the_pick_is_the_best_fresh_mean_of_rl_relay_reevaluate_not_the_search_estimate(
    tmp_path,
) -> None:
    from rl_relay.reevaluate.command import write_summary
    from rl_relay.reevaluate.stats import Candidate, Evaluated, summary_rows

    def candidate(job: int, estimate: float, n_steps: int, act: str) -> Candidate:
        values = {
            "config.rl_config.n_steps": n_steps,
            "config.rl_config.policy_kwargs.activation_fn": act,
            "config.rl_config.gamma": 0.99,
        }
        return Candidate(job, estimate, values)

    evaluated = [
        Evaluated(candidate(4, 500.0, 64, "relu"), [120.0, 180.0], [1, 2]),  # the lucky one
        Evaluated(candidate(7, 450.0, 32, "tanh"), [400.0, 380.0], [3, 4]),
        Evaluated(candidate(9, 480.0, 64, "tanh"), [], []),  # no run finished
    ]
    summary = tmp_path / "summary.csv"
    write_summary(summary, summary_rows(evaluated, minimize=False))
    mean, overrides = read_pick(summary, small_space())
    assert mean == 390.0
    assert overrides == {
        "config.rl_config.n_steps": 32,
        "config.rl_config.policy_kwargs.activation_fn": "tanh",
        "config.rl_config.gamma": 0.99,
    }
    write_summary(summary, summary_rows(evaluated[2:], minimize=False))
    with pytest.raises(ValueError, match="no configuration has a finished re-evaluation run"):
        read_pick(summary, small_space())


def test_job_rewards_are_the_finished_runs_rewards(tmp_path) -> None:
    state = new_state(Plan(runs=2, iterations=1, max_attempts=2, base_seed=0))
    state = state.succeeded(state.next_step(), "/m", "").with_reward(0, 500.0)
    save_state(JobPaths(tmp_path).state, state)  # run 1 not done, no reward
    assert job_rewards(tmp_path) == [500.0]


def test_an_early_stopping_search_chains_its_trainings_and_evaluates_each_rung(tmp_path) -> None:
    """The same total training per job, in 4 chained iterations evaluated at each end; the
    budget in env steps is what the rounds of the search fill (runs.rl_relay_search)."""
    search_ = search(16, 10_000, 10, 1, 101, 1)
    out = rl_relay_settings(search_, "cem~asha", tmp_path, "search")
    fixed = out["fixed_params"]
    assert fixed["training_iterations"] * fixed["config.rl_common_config.total_timesteps"] == 10_000
    assert fixed["config.rl_common_config.evaluations"] == fixed["training_iterations"] == 4
    assert out["early_stopping"]["rule"] == "asha"
    assert out["optimization_setting"]["number_of_samples"] == 16  # the first round
    pruned = rl_relay_settings(search_, "tpe~pruned", tmp_path, "search")
    assert pruned["early_stopping"] == {
        "rule": "optuna", "pruner": "median", "n_startup_trials": 10, "n_warmup_steps": 1,
    }  # fmt: skip
    assert "reward_window" not in pruned["fixed_params"]  # the rung's evaluation alone
    # as rl_zoo3: the pruner waits for as many trials as the sampler draws at random
    two_runs = rl_relay_settings(
        search(16, 10_000, 10, 2, 101, 1), "tpe@2~pruned", tmp_path, "search"
    )
    assert two_runs["optimization_setting"]["number_of_samples"] == 8
    assert two_runs["early_stopping"]["n_startup_trials"] == 5  # 10 of 16 -> 5 of 8
    half = rl_relay_settings(
        search(16, 10_000, 10, 2, 101, 1), "tpe@2~prunedhalf", tmp_path, "search"
    )["early_stopping"]
    assert (half["n_startup_trials"], half["n_warmup_steps"]) == (5, 2)  # from rung 2 of 3
    asha_half = rl_relay_settings(search_, "tpe~ashahalf", tmp_path, "search")["early_stopping"]
    assert (asha_half["rule"], asha_half["grace_iterations"]) == ("asha", 2)  # rungs 2 and 3
    # ~late: the last 2 of the 4 iteration-end evaluations, read back across iterations
    late = rl_relay_settings(search_, "tpe~late~pruned", tmp_path, "search")["fixed_params"]
    assert (late["config.rl_common_config.evaluations"], late["reward_window"]) == (4, 2)
    plain = rl_relay_settings(search_, "cem", tmp_path, "search")
    assert "early_stopping" not in plain and plain["fixed_params"]["training_iterations"] == 1


def test_an_early_stopping_search_adds_jobs_until_its_share_less_its_re_runs_is_used() -> None:
    from bench.hpo_quality.methods import parse_method
    from bench.hpo_quality.runs import more_samples

    s = search(32, 10_000, 5, 1, 101, 1)
    assert parse_method("tpe~pruned%80").search_share(s.trials, s.budget) == 256_000
    # +3x2: its 6 re-runs of 10,000 env steps are part of the 95%
    assert parse_method("tpe+3x2~pruned%95").search_share(s.trials, s.budget) == 304_000 - 60_000
    assert parse_method("tpe+3x2~pruned%95").search_share(s.trials) == 30 - 6  # in trainings
    # 26 jobs used 6,000 each (some stopped): 88,000 left are 14 more at that cost
    assert more_samples(244_000, [6_000] * 26) == 14
    assert more_samples(244_000, [6_000] * 40) == 0  # over: none
    assert more_samples(244_000, [8_000] * 30) == 0  # 4,000 left: less than one job
    assert more_samples(244_000, []) == 0  # nothing ran: nothing to extrapolate from


def test_a_fit_search_never_plans_a_round_past_its_share(tmp_path) -> None:
    from bench.hpo_quality.runs import fitting_samples

    # Pendulum: 16 trainings of 5,000; 90% is 72,000, which holds 14 whole jobs, not the 16
    # a first round of the zoo's trial count would run at full cost (80,000) if none stopped
    pendulum = search(16, 5_000, 10, 1, 100, 1)
    fit = rl_relay_settings(pendulum, "tpe~ce~late~fit~pruned%90", tmp_path, "search")
    assert fit["optimization_setting"]["number_of_samples"] == 14
    unfit = rl_relay_settings(pendulum, "tpe~ce~late~pruned%90", tmp_path, "search")
    assert unfit["optimization_setting"]["number_of_samples"] == 16
    # +3x2 at 90% of 32 x 10,000: 28 trainings, 6 kept for the re-runs, 22 for the search
    cartpole = search(32, 10_000, 5, 1, 100, 1)
    picks = rl_relay_settings(cartpole, "tpe+3x2~fit~pruned%90", tmp_path, "search")
    assert picks["optimization_setting"]["number_of_samples"] == 22
    # later rounds: only jobs that fit at full cost, however cheap the stopped ones were
    assert fitting_samples(72_000, [5_000] * 10 + [1_250] * 4, 5_000) == 3  # 17,000 left
    assert fitting_samples(72_000, [5_000] * 14, 5_000) == 0  # 2,000 left: no whole job
    assert fitting_samples(72_000, [5_001] * 15, 5_000) == 0  # over already: none


def test_an_early_stopping_search_keeps_the_rollouts_that_fit_an_iteration(tmp_path) -> None:
    from bench.hpo_quality.space import rollouts_within

    n_steps = {"param": "config.rl_config.n_steps", "distribution": "Discrete"}
    gamma = {"param": "config.rl_config.gamma", "distribution": "Discrete"}
    settings = {
        "optimized_params": [
            {**n_steps, "options": [32, 256, 512]},
            {**gamma, "options": [0.9, 0.99]},
        ]
    }
    kept = rollouts_within(settings, 2500, 8)["optimized_params"]
    assert kept[0]["options"] == [32, 256] and kept[1]["options"] == [0.9, 0.99]
    assert settings["optimized_params"][0]["options"] == [32, 256, 512]  # a copy
