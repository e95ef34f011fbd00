"""A job's parameters and every path reach it exactly as they are: no shell reads them.

cluster_utils 3.0.0 defects, in ``server/job.py`` (``Job.generate_execution_cmd``,
``Job.singularity_wrap``) and in its backends' job scripts and submission commands:

- **parameters in a shell word**: the job's parameters go into its job script as the Python
  ``repr`` of a dict inside one double-quoted bash word, ``--parameter-dict "{...}"``. Bash
  runs `` `...` `` and ``$(...)`` in a value, expands ``$HOME``, a backslash escape becomes
  a real character after the job's ``literal_eval`` (``a\\nb``: a newline), and a ``"``
  (or a ``'``, which makes ``repr`` quote with ``"``) ends the word early: the job fails
  before it registers, and the HPO waits for it for ever;
- **unquoted paths**: ``cd {main_path}``, ``source {virtual_env_path}/bin/activate``, the
  script, ``./{pre_job_script}``, the Singularity image, binds and ``--pwd`` are pasted into
  the script as they are; so are the run script's own files: the local backend's
  ``taskset ... bash {run script}`` (run through a shell) and its ``"$output"`` paths, the
  ``.FAILED`` marker of the Slurm and HTCondor scripts, ``#SBATCH --output=``/``--job-name=``,
  HTCondor's ``rm -f`` and ``condor_submit_bid``. A space in the directory the HPO runs from
  (``cd: too many arguments``), in ``results_dir``, in ``optimization_procedure_name`` or in
  ``CLUSTER_UTILS_CACHE_DIR`` gives jobs that never start and an HPO that waits for them.

The replacements write the job's parameters as JSON to ``job_parameters.json`` in its
working directory (atomically, before the job is submitted) and pass only that path:
cluster_utils' client reads a parameter file in place of ``--parameter-dict``
(``rl_relay.job.run_learning`` and ``rl_relay.container.argv`` read it). Every path and
argument is quoted with ``shlex.quote``; ``#SBATCH`` values with sbatch's own quoting, and
the output files' ``%`` (Slurm's filename patterns) escaped.

Shell text on purpose, as in cluster_utils: the values of ``environment_setup.variables``
(``export NAME="value"``, so ``"$PATH:/opt/bin"`` expands) and the Slurm ``srun`` prefix.
``singularity.args`` become one argument each (cluster_utils joined them unquoted).
Otherwise the replacements do what cluster_utils 3.0.0's code does, in the same order.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shlex
import subprocess
from collections.abc import Mapping
from copy import copy
from typing import Any

from rl_relay.atomic import atomic_write_json
from rl_relay.layout import JobPaths
from rl_relay.paramtree import plain

q = shlex.quote


def write_parameters(settings: Mapping[str, Any]) -> pathlib.Path:
    """The job's parameters as JSON in its working directory; returns the file's path."""
    path = JobPaths(pathlib.Path(str(settings["working_dir"]))).parameters
    atomic_write_json(path, plain(settings))
    return path


def job_arguments(comm_server_info: Mapping[str, Any], params_file: os.PathLike) -> list[str]:
    """What the job script gets: ``--job-id=N --cluster-utils-server=IP:PORT PARAMS_FILE``."""
    from cluster_utils.base.constants import ID

    return [
        f"--job-id={comm_server_info[ID]}",
        f"--cluster-utils-server={comm_server_info['ip']}:{comm_server_info['port']}",
        os.fspath(params_file),
    ]


def execution_cmd(self: Any, paths: Mapping[str, Any], cmd_prefix: str | None = None) -> str:
    """``Job.generate_execution_cmd``: the same lines, every path and argument quoted, the
    parameters in a file."""
    logger = logging.getLogger("cluster_utils")
    current_setting = self.generate_final_setting(paths)

    lines = [f"cd {q(str(paths['main_path']))}"]
    env_variables: dict[str, str] | None = None
    if "virtual_env_path" in paths:
        lines.append(f"source {q(os.path.join(paths['virtual_env_path'], 'bin/activate'))}")
    if "conda_env_path" in paths:
        lines.append(f"pushd && cd && exec conda activate {q(paths['conda_env_path'])} && popd")
    if "variables" in paths:
        if not isinstance(paths["variables"], dict):
            raise ValueError(
                'Expected type dict for "variables", but got type'
                f" {type(paths['variables'])} instead"
            )
        env_variables = {str(name): str(value) for name, value in paths["variables"].items()}
        # shell text on purpose, as in cluster_utils: "$PATH:/opt/bin" expands
        lines += [f'export {name}="{value}"' for name, value in env_variables.items()]
    if "pre_job_script" in paths:
        lines.append(q(f"./{paths['pre_job_script']}"))
    if "custom_pythonpaths" in paths:
        raise NotImplementedError(
            'Setting custom pythonpath was deprecated. Set "virtual_env_path" instead.'
        )
    if "custom_python_executable_path" in paths:
        logger.warning(
            "Setting custom_python_executable_path not recommended. "
            'Better set "virtual_env_path" instead.'
        )
    python_executor = paths.get("custom_python_executable_path", "python3")

    self.final_settings = current_setting
    arguments = job_arguments(self.comm_server_info, write_parameters(current_setting))
    script_path = os.path.join(paths["main_path"], paths["script_to_run"])
    if not paths.get("is_python_script", True):
        argv = [script_path, *arguments]
    elif paths.get("run_as_module", False):
        module_name = paths["script_to_run"].replace("/", ".").replace(".py", "")
        argv = [python_executor, "-m", module_name, *arguments]
    else:
        argv = [python_executor, script_path, *arguments]
    exec_cmd = " ".join(q(str(arg)) for arg in argv)

    if self.singularity_settings:
        exec_cmd = singularity_wrap(
            self,
            exec_cmd,
            self.singularity_settings,
            paths["main_path"],
            current_setting["working_dir"],
            env_variables,
        )
    if cmd_prefix:
        exec_cmd = f"{cmd_prefix} {exec_cmd}"
    lines.append(exec_cmd)
    return "\n".join(lines)


def singularity_wrap(
    self: Any,
    exec_cmd: str,
    singularity_settings: Any,
    exec_dir: str | os.PathLike,
    working_dir: str | os.PathLike,
    env_variables: dict[str, str] | None,
) -> str:
    """``Job.singularity_wrap``: the runtime's arguments quoted (``exec_cmd`` is shell text
    already); ``--env`` values stay shell text like ``export``'s."""
    image = pathlib.Path(singularity_settings.image).expanduser()
    if not image.exists():
        raise FileNotFoundError(f"Singularity image '{image}' does not exist")
    pathlib.Path(working_dir).mkdir(exist_ok=True)
    cwd = os.fspath(exec_dir)
    binds = ",".join(["/tmp", os.fspath(working_dir), cwd])
    words = [
        q(singularity_settings.executable),
        "run" if singularity_settings.use_run else "exec",
        q(f"--bind={binds}"),
        q(f"--pwd={cwd}"),
        *(f'--env {name}="{value}"' for name, value in (env_variables or {}).items()),
        *(q(str(arg)) for arg in singularity_settings.args),
        q(os.fspath(image)),
    ]
    full_cmd = f"{' '.join(words)} {exec_cmd}"
    logging.getLogger("cluster_utils").debug("Singularity-wrapped command: %s", full_cmd)
    return full_cmd


# -- the local backend ---------------------------------------------------------------------

LOCAL_RUN_SCRIPT = """#!/bin/bash
# {id}

error={error}
output={output}

# Close standard output and error file descriptors
exec 1<&-
exec 2<&-

# Redirect output and error streams to files from here on
exec 1>>"$output"
exec 2>>"$error"

{cmd}
rc=$?

if [[ $rc != 0 ]]; then
    echo "Failed with exit code $rc"
    # add an indicator file to more easily identify failed jobs
    echo "$rc" > {failed}
fi

exit $rc
"""


def local_job_script(self: Any, job: Any) -> None:
    """``DummyClusterSubmission.generate_job_spec_file`` with quoted paths."""
    logging.getLogger("cluster_utils").debug("Generate run script for job %d.", job.id)
    path = os.path.join(self.submission_dir, f"{job.iteration}_{job.id}.sh")
    script = LOCAL_RUN_SCRIPT.format(
        id=job.id,
        error=q(f"{path}.err"),
        output=q(f"{path}.out"),
        cmd=job.generate_execution_cmd(self.paths),
        failed=q(f"{path}.FAILED"),
    )
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)
    job.run_script_path = path


def local_submit_fn(self: Any, job: Any) -> Any:
    """``DummyClusterSubmission.submit_fn``: the run script's path quoted in its shell
    command."""
    import random

    if not job.waiting_for_resume:
        self.generate_job_spec_file(job)
    free_cpus = ",".join(map(str, random.sample(self.available_cpus, self.cpus_per_job)))
    cmd = f"taskset --cpu-list {free_cpus} bash {q(job.run_script_path)}"
    cluster_id = self.generate_cluster_id()
    future = self.executor.submit(
        subprocess.run, cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, shell=True
    )
    job.futures_object = future
    self.futures_tuple.append((cluster_id, future))
    return cluster_id


# -- Slurm ---------------------------------------------------------------------------------


def sbatch_value(value: str) -> str:
    """A value for an ``#SBATCH`` line: sbatch reads ``"..."`` with ``\\\\`` and ``\\"``
    escapes; the line ends the directive, so control characters become ``_``."""
    text = "".join(c if c.isprintable() else "_" for c in value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def slurm_file_name(path: str) -> str:
    """``path`` as Slurm's ``--output``/``--error`` read it: they replace ``%j`` and the like
    anywhere in the path (also in a directory's name, and in the job's working directory
    that a relative name is joined to), unless it holds a backslash; then a backslash
    escapes the character after it."""
    if not path.isprintable():
        raise ValueError(
            f"{path!r}: an #SBATCH line cannot hold a control character (a newline, a tab);"
            " remove it from CLUSTER_UTILS_CACHE_DIR or optimization_procedure_name"
        )
    if "\\" in path:
        return path.replace("\\", "\\\\")
    return path.replace("%", "%%")


SLURM_RUN_SCRIPT = """#!/bin/bash
{sbatch_arg_lines}

# Submission ID {id}

echo "==== Start execution. ===="
echo "Job id: {id}, cluster id: ${{SLURM_JOB_ID}}, hostname: $(hostname), time: $(date)"
echo

{cmd}
rc=$?

echo "==== Finished execution. ===="
if [[ $rc == {resume} ]]; then
    echo "Exit with code {resume} for resume"
    # do not forward the exit code, as otherwise Slurm will think there was an error
    exit 0
elif [[ $rc != 0 ]]; then
    echo "Failed with exit code $rc"
    # add an indicator file to more easily identify failed jobs
    echo "$rc" > {failed}
    exit $rc
fi
"""


def slurm_job_script(self: Any, job: Any) -> None:
    """``SlurmClusterSubmission._generate_run_script``: the job name and the output files in
    sbatch's quotes, Slurm's filename patterns escaped; the ``.FAILED`` marker quoted."""
    from cluster_utils.base.constants import RETURN_CODE_FOR_RESUME
    from cluster_utils.server.slurm_cluster_system import SBatchArgumentBuilder

    name = f"job_{job.iteration}_{job.id}"
    path = pathlib.Path(self.submission_dir) / f"{name}.sh"
    cmd = job.generate_execution_cmd(self.paths, cmd_prefix="srun")
    args = SBatchArgumentBuilder()
    args.add("job-name", sbatch_value(f"{job.opt_procedure_name}_{job.id}"))
    args.add("output", sbatch_value(slurm_file_name(str(path.with_suffix(".out")))))
    args.add("error", sbatch_value(slurm_file_name(str(path.with_suffix(".err")))))
    req = self.requirements
    args.add("partition", req.partition)
    args.add("cpus-per-task", req.cpus_per_task)
    args.add("gpus-per-task", req.gpus_per_task)
    args.add("mem", req.mem)
    args.add("time", req.time)
    args.add("nodes", req.nodes)
    args.add("ntasks", req.ntasks)
    if req.exclude:
        args.add("exclude", ",".join(req.exclude))
    if req.signal:
        args.add("signal", req.signal)
    args.extend_raw(req.extra_submission_options)
    script = SLURM_RUN_SCRIPT.format(
        sbatch_arg_lines=args.construct_argument_comment_block(),
        id=job.id,
        cmd=cmd,
        resume=RETURN_CODE_FOR_RESUME,
        failed=q(f"{path}.FAILED"),
    )
    logging.getLogger("cluster_utils").debug("Write run script to %s", path)
    path.write_text(script)
    path.chmod(0o755)
    job.run_script_path = str(path)


# -- HTCondor ------------------------------------------------------------------------------

CONDOR_RUN_SCRIPT = """#!/bin/bash
# Submission ID {id}

{cmd}
rc=$?
if [[ $rc == 0 ]]; then
    rm -f {run_script}
    rm -f {spec_file}
elif [[ $rc == {resume} ]]; then
    echo "exit with code {resume} for resume"
    exit {resume}
elif [[ $rc != 0 ]]; then
    echo "Failed with exit code $rc"
    # add an indicator file to more easily identify failed jobs
    echo "$rc" > {failed}
    exit $rc
fi
"""


def condor_job_files(self: Any, job: Any) -> None:
    """``CondorClusterSubmission.generate_job_spec_file``: the run script's paths quoted (the
    submit description is cluster_utils' own)."""
    from cluster_utils.base.constants import RETURN_CODE_FOR_RESUME
    from cluster_utils.server.condor_cluster_system import MPI_CLUSTER_JOB_SPEC_FILE

    job_file_name = f"job_{job.iteration}_{job.id}.sh"
    run_script_file_path = os.path.join(self.submission_dir, job_file_name)
    job_spec_file_path = os.path.join(self.submission_dir, job_file_name + ".sub")
    cmd = job.generate_execution_cmd(self.paths)
    with open(run_script_file_path, "w") as f:
        f.write(
            CONDOR_RUN_SCRIPT.format(
                id=job.id,
                cmd=cmd,
                run_script=q(run_script_file_path),
                spec_file=q(job_spec_file_path),
                resume=RETURN_CODE_FOR_RESUME,
                failed=q(f"{run_script_file_path}.FAILED"),
            )
        )
    os.chmod(run_script_file_path, 0o755)
    namespace = copy(vars(self))
    namespace.update(vars(job))
    namespace.update(
        job_file_name=job_file_name,
        run_script_file_path=run_script_file_path,
        job_spec_file_path=job_spec_file_path,
        cmd=cmd,
    )
    with open(job_spec_file_path, "w") as f:
        f.write(MPI_CLUSTER_JOB_SPEC_FILE % namespace)
    job.job_spec_file_path = job_spec_file_path
    job.run_script_path = run_script_file_path


def condor_submit_fn(self: Any, job: Any) -> Any:
    """``CondorClusterSubmission.submit_fn``: ``condor_submit_bid`` as an argument list (no
    shell), the rest as in cluster_utils."""
    from cluster_utils.server.cluster_system import ClusterJobId

    logger = logging.getLogger("cluster_utils")
    self.generate_job_spec_file(job)
    submit_cmd = ["condor_submit_bid", str(self.bid), job.job_spec_file_path]
    submit_output = ""
    for try_number in range(10):
        if try_number == 9:
            logging.exception("Job aborted, cluster unstable.")
            raise Exception(
                "Too many submission timeouts, cluster seems to be too unstable to submit jobs"
            )
        try:
            result = subprocess.run(
                submit_cmd, cwd=str(self.submission_dir), stdout=subprocess.PIPE, timeout=15.0
            )
            submit_output = result.stdout.decode("utf-8")
            break
        except subprocess.TimeoutExpired:
            logger.warning(f"Job submission for id {job.id} hangs. Retrying...")
    lines = submit_output.split("\n")
    good_lines = [line for line in lines if "submitted" in line]
    bad_lines = [line for line in lines if "WARNING" in line or "ERROR" in line]
    if not good_lines or bad_lines:
        logger.error(
            f"Job with id {job.id} submitted to condor cluster, but job submission"
            f" failed. Submission output:\n{submit_output}"
        )
        print(bad_lines)
        self.close()
        raise RuntimeError("Cluster submission failed")
    assert len(good_lines) == 1
    return ClusterJobId(good_lines[0].split(" ")[-1][:-1])


#: ``(module of cluster_utils.server, class, attribute)`` -> its replacement.
REPLACEMENTS = {
    ("job", "Job", "generate_execution_cmd"): execution_cmd,
    ("job", "Job", "singularity_wrap"): singularity_wrap,
    ("dummy_cluster_system", "DummyClusterSubmission", "generate_job_spec_file"): local_job_script,
    ("dummy_cluster_system", "DummyClusterSubmission", "submit_fn"): local_submit_fn,
    ("slurm_cluster_system", "SlurmClusterSubmission", "_generate_run_script"): slurm_job_script,
    (
        "condor_cluster_system",
        "CondorClusterSubmission",
        "generate_job_spec_file",
    ): condor_job_files,
    ("condor_cluster_system", "CondorClusterSubmission", "submit_fn"): condor_submit_fn,
}


def targets() -> list[tuple[type, str, Any]]:
    """``(class, attribute, replacement)`` of every replacement."""
    import importlib

    found = []
    for (module, cls, attribute), replacement in REPLACEMENTS.items():
        owner = getattr(importlib.import_module(f"cluster_utils.server.{module}"), cls)
        found.append((owner, attribute, replacement))
    return found


def install() -> None:
    for owner, attribute, replacement in targets():
        setattr(owner, attribute, replacement)
