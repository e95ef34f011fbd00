#!/usr/bin/env python3
"""What one save of the optimiser state costs the HPO driver.

``rl-relay hpo`` rewrites ``all_data.csv``, ``reduced_data.csv`` and ``status.pickle``
atomically (temporary file, fsync, rename) soon after results arrive, within 5% of its
time (``rl_relay.optimizers.persist``), where cluster_utils 3.0 writes them once per
optimiser iteration. Prints the median time of one save and the state's size for HPOs of
growing size, for the genetic and the cem optimiser.
Run from the repo root: ``python bench/hpo_state_save.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from cluster_utils.hp_optimization import get_distribution  # noqa: E402
from cluster_utils.server.job import Job  # noqa: E402

from rl_relay.hpo.patches.cem_continue import ContinuableMetaoptimizer  # noqa: E402
from rl_relay.layout import STATUS_PICKLE, WORKING_DIRS  # noqa: E402
from rl_relay.metrics import MEAN_REWARD, STD_REWARD, TIME_ELAPSED  # noqa: E402
from rl_relay.optimizers.genetic import GeneticOptimizer  # noqa: E402
from rl_relay.optimizers.persist import save_state  # noqa: E402

PARAMS = [
    {
        "param": "config.rl_config.learning_rate",
        "distribution": "TruncatedLogNormal",
        "bounds": [1e-4, 1e-2],
    },
    {
        "param": "config.rl_config.batch_size",
        "distribution": "Discrete",
        "options": [16, 32, 64, 128],
    },
    {"param": "config.rl_config.n_steps", "distribution": "Discrete", "options": [16, 32, 64]},
    {
        "param": "config.rl_config.policy_kwargs.net_arch:1",
        "distribution": "IntLogNormal",
        "bounds": [8, 128],
    },
]
FIXED = {"learning_runs_per_job": 2, "config": {"config_templates": "./hp_optim/x.json"}}


def optimizer_with(cls: type, results: int, **settings: object) -> object:
    optimizer = cls(
        optimized_params=[get_distribution(**dict(p)) for p in PARAMS],
        metric_to_optimize=MEAN_REWARD,
        minimize=False,
        report_hooks=None,
        number_of_samples=results,
        **settings,
    )
    paths = {"current_result_dir": f"/results/{WORKING_DIRS}"}
    for i in range(results):
        job = Job(
            id=i, settings=optimizer.ask(), other_params=FIXED, paths=paths, iteration=1,
            connection_info={"ip": "", "port": 0}, opt_procedure_name="bench",
            singularity_settings=None,
        )  # fmt: skip
        job.final_settings = job.generate_final_setting(paths)
        job.metrics = {MEAN_REWARD: float(i % 17), STD_REWARD: 1.0, TIME_ELAPSED: 9.0}
        job.set_results()
        optimizer.tell([job])
    return optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"{'optimiser':<18}{'results':>8}{'save (ms, median)':>20}{'status.pickle (kB)':>20}")
    for name, cls, settings in [
        ("genetic", GeneticOptimizer, {"seed": 0}),
        (
            "cem_metaoptimizer",
            ContinuableMetaoptimizer,
            {"with_restarts": False, "num_jobs_in_elite": 5},
        ),
    ]:
        for results in (10, 100, 500):
            optimizer = optimizer_with(cls, results, **settings)
            with tempfile.TemporaryDirectory() as tmp:
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    save_state(optimizer, tmp)
                    times.append(time.perf_counter() - start)
                size = (Path(tmp) / STATUS_PICKLE).stat().st_size / 1024
            print(f"{name:<18}{results:>8}{1000 * statistics.median(times):>20.1f}{size:>20.1f}")


if __name__ == "__main__":
    main()
