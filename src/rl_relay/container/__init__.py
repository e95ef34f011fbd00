"""The container wrapper: what ``wrappers/run_singularity.py`` runs on the host.

Reads the job script's arguments (``argv``), turns the ``singularity`` section of the job's
parameters into the runtime's argument list and environment (``runtime``, with ``binds``
for ``--bind``) and runs it (``run_singularity``). Standard library only: the host may have
nothing but ``python3``.
"""
