"""The exit codes shared by the learner, run_learning, run_singularity and cluster_utils.

cluster_utils (local backend) counts only exit code 1 as a failed job and uses 3 for
"exit for resume"; every other non-zero code looks like a job that sent no results.
The learner uses the same 3 to say "I checkpointed after a preemption signal, start me
again", so the code passes unchanged through every layer up to cluster_utils.
"""

SUCCESS = 0
FAILURE = 1
#: cluster_utils.base.constants.RETURN_CODE_FOR_RESUME; also the learner's
#: "checkpointed, resume me" code.
RESUME = 3
#: The learner's "my configs cannot be trained with": run_learning fails the job at once,
#: without retrying (another seed cannot help), and reports FAILURE to cluster_utils.
CONFIG_ERROR = 4
