"""run_singularity: the container runtime's argument list, built from the job's parameters.

The original wrapper deleted one of its own arguments by position before passing them on,
which breaks with cluster_utils 3's named arguments; here the inner script gets exactly
the arguments the wrapper got, and registers with the cluster_utils server itself.

The command is built by hand rather than with spython's ``Client.execute``/``run``:
those capture or stream output from within Python, but cannot run the runtime in its own
process group with preemption signals passed on and its output teed into the job's log
files, which is what a week-long HPO needs (rl_relay.job.supervise does that).

Only the standard library is imported here: the wrapper runs on the host, often with the
system's ``python3``, while everything else lives in the image.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rl_relay.container import binds as container_binds
from rl_relay.container.binds import Bind, BindError
from rl_relay.paramtree import subtree

RUNTIMES = ("apptainer", "singularity")
PREFIX = "singularity"
#: What the learner inside reads to size itself to the job (rl_relay.job.resources).
#: ``--containall`` implies ``--cleanenv``, which keeps every host variable out of the
#: container, so these are passed in by name (``singularity.env`` overrides them).
JOB_RESOURCE_VARIABLES = (
    "SLURM_CPUS_PER_TASK",
    "SLURM_GPUS_ON_NODE",
    "CUDA_VISIBLE_DEVICES",
    "_CONDOR_JOB_AD",
)
#: OpenMP/BLAS threads: one per CPU the job was given, not one per core of the node.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ContainerError(ValueError):
    """The container cannot be started as configured: a configuration error."""


@dataclass(frozen=True)
class ContainerSpec:
    executable: str
    image: Path
    script: Path
    use_run: bool = True
    nv: bool = False
    containall: bool = True
    #: ``singularity.binds``, parsed; the job's own binds are added by ``job_binds``.
    binds: tuple[Bind, ...] = ()
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


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


def _binds(value: Any, source: str, cwd: Path, problems: list[str]) -> tuple[Bind, ...]:
    if not isinstance(value, list | tuple):
        problems.append(f"{source}: singularity.binds must be a list")
        return ()
    binds = []
    for i, spec in enumerate(value):
        try:
            binds.append(container_binds.parse(spec, cwd))
        except BindError as err:
            problems.append(f"{source}: singularity.binds[{i}]: {err}")
    return tuple(binds)


def _env(value: Any, source: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        problems.append(f"{source}: singularity.env must be an object")
        return {}
    env = {}
    for key, item in value.items():
        where = f"{source}: singularity.env key {key!r}"
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            problems.append(
                f"{where} is not a variable name the runtime can pass in: use letters, digits"
                " and '_', not starting with a digit"
            )
        elif isinstance(item, bool) or not isinstance(item, str | int | float):
            problems.append(f"{where}: the value must be a string or a number, not {item!r}")
        elif "\0" in str(item):
            problems.append(f"{where}: the value contains a NUL character")
        else:
            env[key] = str(item)
    return env


def resolve(
    params: Mapping[str, Any],
    source: str,
    cwd: Path,
    gpus: int = 0,
    path: str | None = None,
    find_executable: bool = True,
) -> ContainerSpec:
    """Check the parameters and resolve paths; every problem in one ContainerError.

    ``find_executable`` False leaves the runtime unlooked-for (``executable`` is then its
    configured name): ``rl-relay check`` asks about it separately (``node_problems``).
    """
    sing = subtree(params, PREFIX)
    if not sing:
        raise ContainerError(
            f"{source}: no singularity parameters; run_singularity.py needs at least"
            ' "singularity.image" and "singularity.script" in fixed_params'
        )
    problems: list[str] = []
    image = script = None
    if "image" not in sing:
        problems.append(f"{source}: singularity.image is missing: the .sif image to run in")
    else:
        image = Path(str(sing["image"])).expanduser()
        if not image.exists():
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
    binds = _binds(sing.get("binds", []), source, cwd, problems)
    if not isinstance(sing.get("args", []), list | tuple):
        problems.append(f"{source}: singularity.args must be a list")
    env = _env(sing.get("env", {}), source, problems)
    executable = sing.get("executable") or RUNTIMES[0]
    if find_executable:
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
        binds=binds,
        args=tuple(str(a) for a in sing.get("args", ())),
        env=env,
    )


def job_binds(
    spec: ContainerSpec, working_dir: Path, cwd: Path, show: Iterable[Path] = ()
) -> list[Bind]:
    """Everything bound for one job, in order; ContainerError for what cannot be bound.

    ``/tmp``, the working directory and the current directory (read-write), then
    ``singularity.binds``, then each host file in ``show`` (the parameter file, the job
    ClassAd) that none of those makes visible, read-only: the job inside must read them at
    the paths it was given. The script must be visible through these binds.
    """
    binds: list[Bind] = []
    try:
        for what, directory in (
            ("/tmp", Path("/tmp")),
            ("working_dir, the job's working directory,", working_dir),
            ("the directory the job starts in", cwd),
        ):
            binds.append(container_binds.same_path(directory, what))
        binds += spec.binds
        for file in show:
            if not container_binds.visible(file, binds):
                binds.append(container_binds.same_path(file, "the file", read_only=True))
    except BindError as err:
        raise ContainerError(str(err)) from None
    if not container_binds.visible(spec.script, binds):
        raise ContainerError(
            f"singularity.script {spec.script} is outside every directory bound into the"
            f" container ({', '.join(b.dest for b in binds)}); start the job from its"
            " checkout or add the checkout to singularity.binds"
        )
    return binds


def command(
    spec: ContainerSpec, binds: Sequence[Bind], cwd: Path, argv: Sequence[str]
) -> list[str]:
    """The runtime's full argument list: runtime, binds, options, image, script, job args."""
    cmd = [
        spec.executable,
        "run" if spec.use_run else "exec",
        *container_binds.options(binds),
        "--pwd",
        str(cwd),
    ]
    if spec.nv:
        cmd.append("--nv")
    if spec.containall:
        cmd.append("--containall")
    return [*cmd, *spec.args, str(spec.image), str(spec.script), *argv]


def environment(
    spec: ContainerSpec, environ: Mapping[str, str], cpus: int | None = None
) -> dict[str, str]:
    """The runtime's environment: ours, plus what the job inside needs under the runtime's
    prefix, which survives ``--cleanenv`` and overrides the image's ``%environment``.

    That is the job's resource variables, the thread counts (the host's, as HTCondor sets
    them, else ``cpus``; the image's ``%environment`` is evaluated before these variables
    arrive, so it cannot compute them from ``SLURM_CPUS_PER_TASK`` itself) and, over all of
    them, ``singularity.env``.
    """
    prefix = "APPTAINERENV_" if "apptainer" in Path(spec.executable).name else "SINGULARITYENV_"
    passed = {k: environ[k] for k in JOB_RESOURCE_VARIABLES if k in environ}
    if cpus:
        passed.update({k: environ.get(k) or str(cpus) for k in THREAD_VARIABLES})
    return {**environ, **{prefix + k: v for k, v in {**passed, **spec.env}.items()}}


def _wraps_jobs(settings: Mapping[str, Any]) -> bool:
    return str(settings.get("script_relative_path", "")).endswith("run_singularity.py")


def check_settings(settings: Mapping[str, Any], cwd: Path) -> list[tuple[str, str]]:
    """Container problems of an hp_optimization settings file that this machine can tell,
    for ``rl-relay check`` (the runtime on PATH: ``node_problems``)."""
    problems: list[tuple[str, str]] = []
    if _wraps_jobs(settings):
        fixed = settings.get("fixed_params", {})
        try:
            resolve(fixed, "fixed_params", cwd, find_executable=False)
        except ContainerError as err:
            problems += [
                ("fixed_params", line.removeprefix("fixed_params: "))
                for line in str(err).splitlines()
            ]
        # every job's working directory is below this, and is bound into the container
        results = Path(str(settings.get("results_dir", ""))).expanduser()
        results = results / str(settings.get("optimization_procedure_name", ""))
        try:
            container_binds.check_path(str(results), "the results directory")
        except BindError as err:
            problems.append(("results_dir", f"{err}; every job's working directory is in it"))
    native = settings.get("singularity")
    if isinstance(native, Mapping):
        image = Path(str(native.get("image", ""))).expanduser()
        if not native.get("image") or not image.exists():
            problems.append(("singularity.image", f"the image {image} does not exist"))
    return problems


def node_problems(settings: Mapping[str, Any], path: str | None = None) -> list[tuple[str, str]]:
    """The container runtime missing from PATH (``path``: the PATH to look in): the jobs
    run it, so it matters on the machines they run on, which this one may not be."""
    problems: list[tuple[str, str]] = []
    if _wraps_jobs(settings):
        sing = subtree(settings.get("fixed_params", {}), PREFIX)
        try:
            find_runtime(sing.get("executable"), path)
        except ContainerError as err:
            problems.append(("fixed_params", str(err)))
    native = settings.get("singularity")
    if isinstance(native, Mapping):
        executable = native.get("executable", "singularity")
        if shutil.which(str(executable), path=path) is None:
            problems.append(
                (
                    "singularity.executable",
                    f"{executable!r} is not on PATH (cluster_utils'"
                    " native section defaults to 'singularity'; set 'apptainer' if that is it)",
                )
            )
    return problems
