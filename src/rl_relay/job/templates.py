"""Read the template index and its templates; write the merged configs of one attempt.

The index (``config.config_templates``) maps each config name to a template JSON file,
relative to the index file unless absolute, as in the original ``hp_optim``. Every
attempt gets ``config/<name>.json`` in its step directory plus ``config.json`` mapping each name
to its file's absolute path; the learning command gets that main config as argument.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.layout import StepPaths
from rl_relay.paramtree import plain


class TemplateError(ValueError):
    """The template index or a template cannot be used: a configuration error."""


@dataclass(frozen=True)
class Templates:
    """The loaded templates of one template index."""

    index_path: Path
    #: name -> absolute template path
    paths: dict[str, Path]
    #: name -> parsed template document
    documents: dict[str, Any]

    def source(self, name: str) -> str:
        """How errors name a template: its file and the index entry it came from."""
        return f"{self.paths[name]} (template {name!r} of {self.index_path})"

    @property
    def sources(self) -> dict[str, str]:
        return {name: self.source(name) for name in self.paths}


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise TemplateError(f"{what} {path} cannot be read: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TemplateError(
            f"{what} {path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def load_templates(index_path: str | Path, base_dir: str | Path | None = None) -> Templates:
    """Load the index and every template it names; relative index paths start at ``base_dir``."""
    index_path = Path(index_path).expanduser()
    if not index_path.is_absolute():
        index_path = Path(base_dir or Path.cwd()) / index_path
    index_path = index_path.resolve()
    index = _read_json(index_path, "the template index (config.config_templates)")
    if not isinstance(index, dict) or not index:
        raise TemplateError(
            f"the template index {index_path} must be a JSON object mapping config names to"
            ' template files, e.g. {"rl_config": "../config_templates/ppo_default.json"}'
        )
    paths: dict[str, Path] = {}
    documents: dict[str, Any] = {}
    for name, rel in index.items():
        if not isinstance(rel, str) or not rel:
            raise TemplateError(
                f"the template index {index_path}: entry {name!r} must be a file path"
                f" string, not {rel!r}"
            )
        path = Path(rel).expanduser()
        if not path.is_absolute():
            path = index_path.parent / path
        path = path.resolve()
        paths[name] = path
        documents[name] = _read_json(path, f"template {name!r} (from {index_path})")
    return Templates(index_path=index_path, paths=paths, documents=documents)


def write_configs(paths: StepPaths, merged: Mapping[str, Any]) -> Path:
    """Write each merged config and the main config of one step; return the main config.

    Written atomically: a killed job never leaves a half config for its resumed self.
    """
    main: dict[str, str] = {}
    for name, document in merged.items():
        path = paths.config(name).resolve()
        atomic_write_json(path, plain(document))
        main[name] = str(path)
    atomic_write_json(paths.main_config, main)
    return paths.main_config
