"""``rl-relay hpo``: cluster_utils' hp_optimization, continued and extended.

The command (``command``; the settings file as cluster_utils reads it is
``rl_relay.settings_file``, shared with ``check``), what a results directory holds when a
driver starts again on it (``continuation``), what a killed driver left running
(``leftovers``), the changes to cluster_utils 3.0 in the driver process, one module per
change (``patches``), and what those use: the rules for a job whose run ended (``job_ends``,
pure), failing a job that died (``dead_jobs``), the CPUs of local jobs (``cpu_slots``, pure)
and the process between the driver and a local job (``job_keeper``, standard library only).
"""
