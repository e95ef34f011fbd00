"""What a PBT member job knows about its population: the ``pbt.*`` job parameters.

``rl-relay hpo`` adds them to ``fixed_params`` (``optimizer.job_params_for_pbt``) and the
optimiser's ``ask`` adds ``pbt.member``; a member job reads them back with
``MemberSpec.from_job_params``. They are flat dotted keys with scalar or tuple values
because cluster_utils rejects a mapping as a fixed parameter value and passes all
parameters to the job through one double-quoted shell word (so no JSON strings either).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rl_relay.paramtree import subtree
from rl_relay.pbt.explore import ParamSpace
from rl_relay.pbt.settings import PBTSettings

#: The fixed parameter (a subtree of the job's parameters) that makes a job a PBT member.
PARAM = "pbt"


class MemberError(RuntimeError):
    """A PBT member cannot go on (bad ``pbt`` parameter, vanished donor checkpoint)."""


@dataclass(frozen=True)
class MemberSpec:
    """Everything a member job needs to know about its population."""

    population_dir: Path
    member: int
    settings: PBTSettings
    space: tuple[ParamSpace, ...]
    metric: str
    minimize: bool
    training_iterations: int
    reward_column: str

    @classmethod
    def from_job_params(
        cls, params: Mapping[str, Any], training_iterations: int, reward_column: str
    ) -> MemberSpec:
        """Read the ``pbt`` parameter (nested or flat dotted) that ``rl-relay hpo`` sets."""
        tree = subtree(params, PARAM)
        try:
            settings = PBTSettings.from_dict(
                {
                    **{k: tree[k] for k in _SETTING_KEYS if k in tree},
                    "stop": {str(c): t for c, t in tree.get("stop") or ()},
                }
            )
            space = tuple(
                ParamSpace.from_item(
                    {"param": p, "distribution": d, "options" if d == "Discrete" else "bounds": v}
                )
                for p, d, v in tree["space"]
            )
            return cls(
                population_dir=Path(tree["population_dir"]),
                member=int(tree["member"]),
                settings=settings,
                space=space,
                metric=str(tree["metric"]),
                minimize=bool(tree["minimize"]),
                training_iterations=int(training_iterations),
                reward_column=reward_column,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise MemberError(
                f"the job parameter {PARAM!r} is incomplete or invalid ({err!r}); it is set by"
                ' `rl-relay hpo` for settings with "optimizer_str": "pbt"'
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """What ``pbt.json`` in the population directory holds (for report and replay)."""
        return {
            "population_size": self.settings.population_size,
            "settings": self.settings.to_dict(),
            "space": [s.to_item() for s in self.space],
            "metric": self.metric,
            "minimize": self.minimize,
            "training_iterations": self.training_iterations,
            "reward_column": self.reward_column,
        }


_SETTING_KEYS = (
    "population_size",
    "perturbation_interval",
    "quantile_fraction",
    "resample_probability",
    "perturbation_factors",
    "synch",
    "seed",
)


def encode_job_params(
    population_dir: Path,
    settings: PBTSettings,
    space: list[ParamSpace] | tuple[ParamSpace, ...],
    metric: str,
    minimize: bool,
) -> dict[str, Any]:
    """The flat ``pbt.*`` fixed parameters ``MemberSpec.from_job_params`` reads back.

    Flat, scalar or tuple values only: cluster_utils rejects a mapping as a fixed parameter
    value and passes parameters through a double-quoted shell word (no JSON strings).
    """
    values: dict[str, Any] = {
        "population_dir": str(population_dir),
        **{k: v for k, v in settings.to_dict().items() if k in _SETTING_KEYS},
        "perturbation_factors": tuple(settings.perturbation_factors),
        "stop": tuple((column, threshold) for column, threshold in settings.stop.items()),
        "space": tuple(
            (s.param, s.distribution, tuple(s.options if s.options is not None else s.bounds or ()))
            for s in space
        ),
        "metric": metric,
        "minimize": bool(minimize),
    }
    return {f"{PARAM}.{key}": value for key, value in values.items()}


def member_seed(base_seed: int, member: int) -> int:
    """A base seed per member (< 2**31), so that members never share random streams."""
    return (
        int(np.random.SeedSequence([int(base_seed), 2, int(member)]).generate_state(1)[0]) % 2**31
    )
