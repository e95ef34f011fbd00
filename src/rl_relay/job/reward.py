"""Read a run's reward from the ``progress.csv`` its learner wrote.

The reward is the last non-empty value of one column, or the mean of its last ``window``
ones, read back across the run's chained iterations (each iteration's ``progress.csv``,
oldest first, as if the run had trained in one piece). SB3 leaves a column empty in rows
where it has nothing to log (``rollout/ep_rew_mean`` before the first finished episode,
``eval/*`` between evaluations). A mean over the last evaluations scores how well a
configuration learned over the end of its training, not one snapshot of a policy that
swings between updates; a window over all of them scores how fast it learned.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path


def evaluation_points(horizon: int, evaluations: int) -> list[int]:
    """The timesteps of the evaluations before the final one: ``evaluations`` spread evenly
    over the whole training (all its iterations), the last at its end.

    They depend only on the horizon, so a split or resumed training evaluates where an
    uninterrupted one does. More evaluations than timesteps give fewer points (one each).
    """
    return sorted({horizon * j // evaluations for j in range(1, evaluations)} - {0, horizon})


def evaluations_logged(evaluations: int, horizon: int) -> int:
    """How many evaluations a run of ``horizon`` timesteps logs over all its iterations:
    one at each of the ``evaluation_points`` and the final one."""
    return 1 + len(evaluation_points(horizon, evaluations))


class RewardColumnError(ValueError):
    """The column is not in the file at all: a configuration error (``reward_column``)."""


class NoRewardError(ValueError):
    """The file or a usable value is missing: the attempt did not produce a result."""


def last_number(progress_csv: Path, column: str) -> float | None:
    """The last finite value of ``column`` in ``progress_csv``; None when there is none (no
    file, no such column, no value): for counters, where nothing is an answer too."""
    try:
        with open(progress_csv, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or column not in header:
                return None
            index = header.index(column)
            last = None
            for row in reader:
                if index < len(row) and row[index].strip():
                    last = row[index].strip()
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    try:
        value = float(last) if last is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _values(progress_csv: Path, column: str) -> list[str]:
    """The non-empty cells of ``column`` in ``progress_csv``, in order."""
    try:
        with open(progress_csv, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise NoRewardError(f"{progress_csv} is empty")
            if column not in header:
                raise RewardColumnError(
                    f"reward_column {column!r} is not a column of {progress_csv} (columns:"
                    f" {', '.join(header)}); set the fixed parameter reward_column to one of them"
                )
            index = header.index(column)
            return [row[index].strip() for row in reader if index < len(row) and row[index].strip()]
    except FileNotFoundError:
        raise NoRewardError(f"the learner wrote no {progress_csv}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise NoRewardError(f"{progress_csv} cannot be read: {err}") from None


def last_values(
    progress_csv: Path, column: str, count: int, earlier: Sequence[str | Path] = ()
) -> list[str]:
    """Up to ``count`` last non-empty cells of ``column``: from ``progress_csv``, and when it
    holds fewer, from the ``earlier`` iterations' files before it (oldest first), read
    only as far back as needed. A missing or unreadable earlier file ends the look back."""
    values = _values(progress_csv, column)
    for older in reversed(earlier):
        if len(values) >= count:
            break
        try:
            values = _values(Path(older), column) + values
        except (NoRewardError, RewardColumnError):
            break
    return values[-count:]


def read_reward(
    progress_csv: Path, column: str, window: int = 1, earlier: Sequence[str | Path] = ()
) -> float:
    """The mean of the last ``window`` non-empty values of ``column`` in ``progress_csv``,
    or, when it holds fewer, in it and the ``earlier`` iterations' files of the same run.

    Fewer values than ``window`` is a configuration error (RewardColumnError): the learner
    logs that many only if it is set up to (``evaluations`` for an ``eval/`` column).
    """
    values = last_values(progress_csv, column, window, earlier)
    if not values:
        raise NoRewardError(f"column {column!r} of {progress_csv} has no value")
    if len(values) < window:
        where = f"{progress_csv} and the run's earlier iterations" if earlier else progress_csv
        raise RewardColumnError(
            f"reward_window is {window} but column {column!r} of {where} has only"
            f" {len(values)} value(s); lower reward_window, or for an eval/ column set"
            f" config.rl_common_config.evaluations to at least {window}"
        )
    return mean_of(values, column, progress_csv)


def mean_of(values: Sequence[str], column: str, progress_csv: Path) -> float:
    """The mean of the cells, each a finite number (else NoRewardError naming the file)."""
    total = 0.0
    for text in values:
        try:
            value = float(text)
        except ValueError:
            raise NoRewardError(f"column {column!r} of {progress_csv} has {text!r}") from None
        if not math.isfinite(value):
            raise NoRewardError(f"column {column!r} of {progress_csv} has {text} (diverged?)")
        total += value
    return total / len(values)
