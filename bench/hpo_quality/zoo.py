"""rl_zoo3's ``train -optimize`` on rl-relay's search space, recording each trial's env steps.

    python -m bench.hpo_quality.zoo --space SETTINGS.json [--native] -- ZOO_TRAIN_ARGS...

(``runs.zoo_search`` runs it so, in the search's directory.) Two in-process patches;
everything else is rl_zoo3's own (its TPE sampler and pruners, trial training, evaluation,
best trial and report CSV):

- ``HYPERPARAMS_SAMPLER[algo]`` asks Optuna for the settings file's optimised parameters
  (named as rl-relay names them) and returns what rl-relay's learner would pass to SB3: the
  template's ``rl_config`` with the settings' fixed and sampled overrides merged by
  ``rl_relay.job.overrides.merge`` and converted by ``constructor_kwargs``. So a zoo trial
  trains exactly what an rl-relay job with the same values trains. ``--native`` keeps the
  zoo's own sampler (its own space).
- The trial's evaluation callback stores ``model.num_timesteps`` at the end of ``learn()`` as
  the trial's user attribute ``env_steps`` (the report CSV's ``user_attrs_env_steps``): the
  zoo rounds ``-n`` up to whole rollouts and trains on past its evaluation, and the
  benchmark counts what was really used.

The number of environments comes from the settings' env template (``--hyperparams n_envs``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import REPO
from .space import fixed_overrides, space_of, suggest

#: the Optuna user attribute of a trial's env steps
ENV_STEPS_ATTR = "env_steps"


def make_sampler(settings: dict[str, Any]) -> tuple[str, int, Callable[..., dict[str, Any]]]:
    """(zoo algo name, n_envs, sampler) for the settings' space and templates."""
    from rl_relay.job.overrides import collect_overrides, merge
    from rl_relay.job.templates import load_templates
    from rl_relay.learner.algorithms import constructor_kwargs

    space = space_of(settings)
    templates = load_templates(settings["fixed_params"]["config.config_templates"], REPO)
    fixed = fixed_overrides(settings)

    def sample(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict:
        values = suggest(trial, space)
        merged = merge(
            templates.documents, collect_overrides({**fixed, **values}), templates.sources
        )
        return constructor_kwargs(merged["rl_config"])

    algo = str(templates.documents["rl_config"]["algorithm"]).lower()
    n_envs = int(templates.documents["env_config"].get("n_envs") or 1)
    return algo, n_envs, sample


def record_env_steps(exp_manager: Any) -> None:
    """Make every trial store the env steps it trained for as user attribute env_steps."""
    base = exp_manager.TrialEvalCallback

    class RecordingTrialEvalCallback(base):  # type: ignore[misc, valid-type]
        def _on_training_end(self) -> None:
            super()._on_training_end()
            self.trial.set_user_attr(ENV_STEPS_ATTR, int(self.num_timesteps))

    exp_manager.TrialEvalCallback = RecordingTrialEvalCallback


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, required=True, help="rl-relay settings file")
    parser.add_argument("--native", action="store_true", help="keep the zoo's own sampler")
    parser.add_argument("zoo_args", nargs=argparse.REMAINDER, help="-- rl_zoo3.train args")
    args = parser.parse_args(argv)
    zoo_args = args.zoo_args[1:] if args.zoo_args[:1] == ["--"] else args.zoo_args
    settings = json.loads(args.space.read_text(encoding="utf-8"))
    algo, n_envs, sampler = make_sampler(settings)

    import rl_zoo3.exp_manager as exp_manager
    import rl_zoo3.hyperparams_opt as hyperparams_opt
    from rl_zoo3.train import train

    record_env_steps(exp_manager)
    if not args.native:
        # exp_manager imported this very dict, so replacing the entry reaches it
        hyperparams_opt.HYPERPARAMS_SAMPLER[algo] = sampler
    # Every zoo trial trains without a logger of its own, so SB3 makes an empty
    # SB3-<timestamp> folder per trial in the system temp dir (hundreds per benchmark run);
    # SB3_LOGDIR sends them into this search's working directory instead.
    os.environ.setdefault("SB3_LOGDIR", str(Path.cwd() / "sb3-logger"))
    sys.argv = ["rl_zoo3.train", *zoo_args, "--hyperparams", f"n_envs:{n_envs}"]
    train()


if __name__ == "__main__":
    main()
