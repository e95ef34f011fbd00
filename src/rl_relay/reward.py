"""Read a run's reward from the ``progress.csv`` its learner wrote.

The reward is the last non-empty value of one column: SB3 leaves a column empty in rows
where it has nothing to log (``rollout/ep_rew_mean`` before the first finished episode,
``eval/*`` until the final evaluation).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path


class RewardColumnError(ValueError):
    """The column is not in the file at all: a configuration error (``reward_column``)."""


class NoRewardError(ValueError):
    """The file or a usable value is missing: the attempt did not produce a result."""


def read_reward(progress_csv: Path, column: str) -> float:
    """The last non-empty value of ``column`` in ``progress_csv``."""
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
            last = ""
            for row in reader:
                if index < len(row) and row[index].strip():
                    last = row[index].strip()
    except FileNotFoundError:
        raise NoRewardError(f"the learner wrote no {progress_csv}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise NoRewardError(f"{progress_csv} cannot be read: {err}") from None
    if not last:
        raise NoRewardError(f"column {column!r} of {progress_csv} has no value")
    try:
        value = float(last)
    except ValueError:
        raise NoRewardError(f"column {column!r} of {progress_csv} ends in {last!r}") from None
    if not math.isfinite(value):
        raise NoRewardError(f"column {column!r} of {progress_csv} ends in {last} (diverged?)")
    return value
