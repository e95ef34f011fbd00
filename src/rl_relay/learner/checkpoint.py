"""The resume checkpoint: everything that decides the rest of a training, in one file.

``model.save`` leaves out what exact resumption needs (the environments and their random
generators, VecNormalize's running returns, the replay buffer, the global RNGs, log values
recorded but not yet written), so the whole algorithm object is pickled together with
them. Beside it, ``save_path + ".zip"`` is a plain SB3 model for users without rl-relay.

Files, for ``save_path`` P: ``P.zip`` (SB3 model), ``P.resume.pkl`` (this checkpoint),
``P.resume.json`` (its size and save time), ``P_vecnormalize.pkl`` (VecNormalize statistics,
if used, for ``VecNormalize.load``). All are written atomically.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger

from rl_relay.atomic import atomic_path, atomic_write_json, fsync_dir
from rl_relay.layout import (
    MODEL_ZIP_SUFFIX,
    RESUME_INFO_SUFFIX,
    RESUME_STATE_SUFFIX,
    VECNORMALIZE_SUFFIX,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _trim_replay_buffer(model: BaseAlgorithm) -> dict[str, Any] | None:
    """Cut a not yet full replay buffer's arrays to their filled part (in place).

    SB3 allocates the whole capacity with ``np.zeros`` (1e6 transitions by default), so a
    short training would otherwise pickle tens of MB of zeros. Returns what ``_untrim``
    needs to put the zero tails back, bit for bit.
    """
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None or buffer.full or buffer.pos == buffer.buffer_size:
        return None
    size, pos = buffer.buffer_size, buffer.pos
    trimmed: dict[str, Any] = {}
    for name, value in list(vars(buffer).items()):
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == size:
            trimmed[name] = value
            setattr(buffer, name, value[:pos].copy())
        elif (
            isinstance(value, dict)
            and all(
                isinstance(v, np.ndarray) and v.ndim and v.shape[0] == size for v in value.values()
            )
            and value
        ):
            trimmed[name] = value
            setattr(buffer, name, {k: v[:pos].copy() for k, v in value.items()})
    return trimmed


def _untrim_replay_buffer(model: BaseAlgorithm, size: int, names: list[str]) -> None:
    """Re-allocate a trimmed buffer's full-capacity arrays (zeros past ``pos``, as SB3 does)."""

    def full(part: np.ndarray) -> np.ndarray:
        array = np.zeros((size, *part.shape[1:]), dtype=part.dtype)
        array[: len(part)] = part
        return array

    buffer = model.replay_buffer  # type: ignore[attr-defined]
    for name, value in list(vars(buffer).items()):
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == buffer.pos:
            setattr(buffer, name, full(value))
        elif (
            isinstance(value, dict)
            and value
            and all(
                isinstance(v, np.ndarray) and v.ndim and v.shape[0] == buffer.pos
                for v in value.values()
            )
        ):
            setattr(buffer, name, {k: full(v) for k, v in value.items()})


class CheckpointError(ValueError):
    """A checkpoint cannot be used."""


@dataclass
class Restored:
    model: BaseAlgorithm
    #: Values recorded in the SB3 logger but not yet dumped (e.g. PPO's train/* values,
    #: written with the next rollout's row).
    pending: tuple[dict, dict, dict]
    rng: tuple[Any, Any, Any]
    load_seconds: float
    #: What the checkpoint was trained with (``seed``, ``rl_config``, ``env_config``; see
    #: ``resume.checkpoint_meta``); None for checkpoints written before it was recorded.
    meta: dict[str, Any] | None = None

    def restore_rng(self) -> None:
        """Put back the global RNG states (python, numpy, torch) of the checkpoint."""
        python_state, numpy_state, torch_state = self.rng
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)

    def restore_pending(self, sb3_logger: Logger) -> None:
        """Put back the log values recorded but not yet written."""
        put_back_pending(sb3_logger, self.pending)

    def restore_globals(self, sb3_logger: Logger) -> None:
        """Both (just before learning): an exact continuation."""
        self.restore_rng()
        self.restore_pending(sb3_logger)


def pending_values(sb3_logger: Logger) -> tuple[dict, dict, dict]:
    """A copy of what the logger recorded for its next row but has not written yet."""
    return (
        dict(sb3_logger.name_to_value),
        dict(sb3_logger.name_to_count),
        dict(sb3_logger.name_to_excluded),
    )


def put_back_pending(sb3_logger: Logger, pending: tuple[dict, dict, dict]) -> None:
    """Record ``pending_values`` again, for the logger's next row."""
    values, counts, excluded = pending
    sb3_logger.name_to_value.update(values)
    sb3_logger.name_to_count.update(counts)
    sb3_logger.name_to_excluded.update(excluded)


def resume_file(save_path: str) -> Path:
    return Path(save_path + RESUME_STATE_SUFFIX)


def save(
    model: BaseAlgorithm,
    save_path: str,
    load_seconds: float | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, float | None]:
    """Write the plain SB3 model and the resume checkpoint; return size and time.

    ``load_seconds``: how long restoring this process's own ``load_path`` took, recorded in
    the info file too, so both costs are beside the checkpoint that run_learning keeps.
    ``meta``: what the model was trained with (seed, configs), checked on resume.
    """
    start = time.perf_counter()
    sb3_logger = model._logger
    vec_normalize = model.get_vec_normalize_env()
    state = {
        "version": FORMAT_VERSION,
        # VecNormalize does not pickle its wrapped env and running returns: keep both.
        "inner_env": vec_normalize.venv if vec_normalize is not None else None,
        "returns": vec_normalize.returns if vec_normalize is not None else None,
        "rng": (random.getstate(), np.random.get_state(), torch.get_rng_state()),
        "meta": meta,
        "pending": pending_values(sb3_logger),
    }
    model._logger = None  # open files do not pickle; the next process makes its own
    trimmed = _trim_replay_buffer(model)
    if trimmed is not None:
        state["trimmed_buffer"] = (model.replay_buffer.buffer_size, list(trimmed))  # type: ignore[attr-defined]
    # Each file is streamed into its temporary file (no copy in memory); the directory is
    # synced once for the three renames, before the info file that marks the checkpoint.
    try:
        state["model"] = model
        with atomic_path(resume_file(save_path), sync_dir=False) as tmp, open(tmp, "wb") as f:
            cloudpickle.dump(state, f)
    finally:
        model._logger = sb3_logger
        for name, value in (trimmed or {}).items():
            setattr(model.replay_buffer, name, value)  # type: ignore[attr-defined]
    model_zip = Path(save_path + MODEL_ZIP_SUFFIX)
    with atomic_path(model_zip, sync_dir=False) as tmp, open(tmp, "wb") as f:
        model.save(f)
    if vec_normalize is not None:
        with atomic_path(save_path + VECNORMALIZE_SUFFIX, sync_dir=False) as tmp:
            vec_normalize.save(str(tmp))
    fsync_dir(model_zip.parent)
    info = {
        "checkpoint_bytes": resume_file(save_path).stat().st_size,
        "model_zip_bytes": model_zip.stat().st_size,
        "save_seconds": time.perf_counter() - start,
        "previous_load_seconds": load_seconds,
        "num_timesteps": model.num_timesteps,
    }
    atomic_write_json(save_path + RESUME_INFO_SUFFIX, info)
    logger.info(
        "checkpoint %s: %.1f MB in %.2f s",
        resume_file(save_path),
        info["checkpoint_bytes"] / 1e6,
        info["save_seconds"],
    )
    return info


def load(load_path: str) -> Restored:
    """Read a checkpoint written by ``save`` for ``load_path`` (a former ``save_path``)."""
    start = time.perf_counter()
    path = resume_file(load_path)
    try:
        with open(path, "rb") as f:
            state = cloudpickle.load(f)
    except FileNotFoundError:
        raise CheckpointError(
            f"no resume checkpoint {path}: load_path must be a save_path this learner wrote"
        ) from None
    except Exception as err:  # any unpickling failure means the file is unusable  # noqa: BLE001
        raise CheckpointError(f"the resume checkpoint {path} cannot be read: {err}") from None
    if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a version {FORMAT_VERSION} rl-relay checkpoint")
    model = state["model"]
    if state.get("trimmed_buffer"):
        _untrim_replay_buffer(model, *state["trimmed_buffer"])
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        vec_normalize.set_venv(state["inner_env"])
        vec_normalize.returns = state["returns"]
    seconds = time.perf_counter() - start
    logger.info("loaded %s (%d timesteps) in %.2f s", path, model.num_timesteps, seconds)
    return Restored(
        model=model,
        pending=state["pending"],
        rng=state["rng"],
        load_seconds=seconds,
        meta=state.get("meta"),
    )


def read_info(save_path: str) -> dict[str, Any]:
    return json.loads(Path(save_path + RESUME_INFO_SUFFIX).read_text())
