"""run_singularity: the container runtime's argument list, built from the job's parameters.

The original wrapper deleted one of its own arguments by position before passing them on,
which breaks with cluster_utils 3's named arguments; here the inner script gets exactly
the arguments the wrapper got, and registers with the cluster_utils server itself.

The command is built by hand rather than with spython's ``Client.execute``/``run``:
those capture or stream output from within Python, but cannot run the runtime in its own
process group with preemption signals passed on and its output teed into the job's log
files, which is what a week-long HPO needs (rl_relay.supervise does that).

Only the standard library is imported here: the wrapper runs on the host, often with the
system's ``python3``, while everything else lives in the image.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNTIMES = ("apptainer", "singularity")
PREFIX = "singularity"


class ContainerError(ValueError):
    """The container cannot be started as configured: a configuration error."""


@dataclass(frozen=True)
class JobArgs:
    """What cluster_utils gave the job script, parsed with cluster_utils' grammar."""

    params: dict[str, Any]
    #: Where the parameters came from, for error messages.
    source: str
    #: The script's arguments, to pass on unchanged.
    argv: tuple[str, ...]
    #: The working directory to use when the parameters name none.
    default_working_dir: Path


@dataclass(frozen=True)
class ContainerSpec:
    executable: str
    image: Path
    script: Path
    use_run: bool = True
    nv: bool = False
    containall: bool = True
    binds: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def _set_dotted(params: dict[str, Any], dotted: str, value: Any) -> None:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def parse_job_args(argv: Sequence[str]) -> JobArgs:
    """``[--job-id N] [--cluster-utils-server IP:PORT] [--parameter-dict] P [key=value ...]``.

    P is a Python dict literal (with ``--parameter-dict``) or a JSON parameter file. The
    grammar is cluster_utils 3's (``cluster_utils.client``), re-implemented so that the
    host needs no cluster_utils.
    """
    args = list(argv)
    positional: list[str] = []
    is_dict = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--parameter-dict":
            is_dict = True
        elif arg in ("--job-id", "--cluster-utils-server"):
            i += 1
        elif arg.startswith(("--job-id=", "--cluster-utils-server=")):
            pass
        elif arg.startswith("--"):
            raise ContainerError(f"unknown option {arg!r} in the job's arguments")
        else:
            positional.append(arg)
        i += 1
    if not positional:
        raise ContainerError("no parameters given: expected a parameter file or --parameter-dict")
    first, overrides = positional[0], positional[1:]
    if is_dict:
        params = ast.literal_eval(first)
        source, default_wd = "the job's --parameter-dict", Path.cwd()
    else:
        path = Path(first)
        try:
            params = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ContainerError(f"the parameter file {path} cannot be read: {err}") from None
        source, default_wd = str(path), path.resolve().parent
    if not isinstance(params, dict):
        raise ContainerError(f"{source} must be a dictionary of parameters")
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise ContainerError(f"{override!r} is not of the form key=value")
        _set_dotted(params, key, ast.literal_eval(value))
    return JobArgs(params, source, tuple(argv), default_wd)


def singularity_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``singularity.*`` parameters, nested or flat dotted."""
    found = dict(params.get(PREFIX, {})) if isinstance(params.get(PREFIX), Mapping) else {}
    for key, value in params.items():
        if key.startswith(PREFIX + "."):
            found[key[len(PREFIX) + 1 :]] = value
    return found


def find_runtime(executable: str | None, path: str | None = None) -> str:
    """The runtime's path: the configured one, else apptainer, else singularity."""
    names = (executable,) if executable else RUNTIMES
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    raise ContainerError(
        f"no container runtime on PATH (looked for {', '.join(names)}); install Apptainer or"
        " Singularity, or set singularity.executable to its path"
    )


def resolve(
    params: Mapping[str, Any],
    source: str,
    cwd: Path,
    gpus: int = 0,
    path: str | None = None,
) -> ContainerSpec:
    """Check the parameters and resolve paths; every problem in one ContainerError."""
    sing = singularity_params(params)
    if not sing:
        raise ContainerError(
            f"{source}: no singularity parameters; run_singularity.py needs at least"
            ' "singularity.image" and "singularity.script" in fixed_params'
        )
    problems = []
    image = script = None
    if "image" not in sing:
        problems.append(f"{source}: singularity.image is missing: the .sif image to run in")
    else:
        image = Path(str(sing["image"])).expanduser()
        if not image.is_file():
            problems.append(
                f"{source}: singularity.image {image} does not exist; build it with"
                " `apptainer build rl_relay.sif containers/rl_relay.def`"
            )
    if "script" not in sing:
        problems.append(f"{source}: singularity.script is missing: the script to run inside")
    else:
        script = cwd / str(sing["script"])
        if not script.is_file():
            problems.append(
                f"{source}: singularity.script {script} does not exist (it is resolved"
                " against the directory the job starts in, like script_relative_path)"
            )
        elif not os.access(script, os.X_OK):
            problems.append(
                f"{source}: singularity.script {script} is not executable; it needs a shebang"
                f" line and `chmod +x {sing['script']}`"
            )
    for key, allowed, what in (
        ("binds", (list, tuple), "list"),
        ("args", (list, tuple), "list"),
        ("env", (Mapping,), "object"),
    ):
        if key in sing and not isinstance(sing[key], allowed):
            problems.append(f"{source}: singularity.{key} must be a {what}")
    executable = None
    try:
        executable = find_runtime(sing.get("executable"), path)
    except ContainerError as err:
        problems.append(f"{source}: {err}")
    if problems:
        raise ContainerError("\n".join(problems))
    assert image is not None and script is not None and executable is not None
    return ContainerSpec(
        executable=executable,
        image=image,
        script=script,
        use_run=bool(sing.get("use_run", True)),
        nv=bool(sing.get("nv", gpus > 0)),
        containall=bool(sing.get("containall", True)),
        binds=tuple(
            str(Path(b).expanduser()) if ":" not in str(b) else str(b)
            for b in sing.get("binds", ())
        ),
        args=tuple(str(a) for a in sing.get("args", ())),
        env={str(k): str(v) for k, v in dict(sing.get("env", {})).items()},
    )


def command(spec: ContainerSpec, working_dir: Path, cwd: Path, argv: Sequence[str]) -> list[str]:
    """The runtime's full argument list: runtime, binds, options, image, script, job args."""
    binds = ["/tmp", str(working_dir), str(cwd), *spec.binds]
    cmd = [
        spec.executable,
        "run" if spec.use_run else "exec",
        "--bind",
        ",".join(dict.fromkeys(binds)),
        "--pwd",
        str(cwd),
    ]
    if spec.nv:
        cmd.append("--nv")
    if spec.containall:
        cmd.append("--containall")
    return [*cmd, *spec.args, str(spec.image), str(spec.script), *argv]


def environment(spec: ContainerSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The runtime's environment: ours plus ``singularity.env`` under the runtime's prefix."""
    prefix = "APPTAINERENV_" if "apptainer" in Path(spec.executable).name else "SINGULARITYENV_"
    return {**environ, **{prefix + k: v for k, v in spec.env.items()}}


def check_settings(settings: Mapping[str, Any], cwd: Path) -> list[tuple[str, str]]:
    """Container problems of an hp_optimization settings file, for ``rl-relay check``."""
    problems: list[tuple[str, str]] = []
    if str(settings.get("script_relative_path", "")).endswith("run_singularity.py"):
        fixed = settings.get("fixed_params", {})
        try:
            resolve(fixed, "fixed_params", cwd)
        except ContainerError as err:
            problems += [
                ("fixed_params", line.removeprefix("fixed_params: "))
                for line in str(err).splitlines()
            ]
    native = settings.get("singularity")
    if isinstance(native, Mapping):
        image = Path(str(native.get("image", ""))).expanduser()
        if not native.get("image") or not image.is_file():
            problems.append(("singularity.image", f"the image {image} does not exist"))
        executable = native.get("executable", "singularity")
        if shutil.which(executable) is None:
            problems.append(
                (
                    "singularity.executable",
                    f"{executable!r} is not on PATH (cluster_utils'"
                    " native section defaults to 'singularity'; set 'apptainer' if that is it)",
                )
            )
    return problems
