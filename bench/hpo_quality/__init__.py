"""The benchmark of rl-relay's searches against rl-baselines3-zoo's Optuna (docs/benchmark.md).

``python bench/hpo_quality.py`` runs it. The package owns what only the comparison needs;
it takes its statistics from ``rl_relay.reevaluate.stats``, the job states it reads from
``rl_relay.job.state_file``, and every file and column name from ``rl_relay.layout`` and
``rl_relay.metrics``. Its modules:

- ``methods``: the method syntax users type (``tpe@2~ce~late``), its parser, readable names
- ``space``: the search space every method shares, and its translations (Optuna, the zoo)
- ``cost``: the cost model of one training, behind the time estimate
- ``outcome``: one search's outcome, and reading what a search left behind
- ``runs``: running the searches (rl-relay's and the zoo's) and the re-evaluation
- ``zoo``: ``rl_zoo3.train -optimize`` on the shared space (the zoo search's process)
- ``report``: the summary, the tables and comparisons, CSV, Markdown and PNG
- ``cli``: the command line: options, the loop over methods and repeats, resume, estimate
- ``luck``: the study behind the zoo-space settings' defaults (``python -m
  bench.hpo_quality.luck``)
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
