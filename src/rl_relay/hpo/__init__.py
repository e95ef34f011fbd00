"""``rl-relay hpo``: cluster_utils' hp_optimization, continued and extended.

The command (``command``), the settings file as cluster_utils reads it (``settings``), what
a results directory holds when a driver starts again on it (``continuation``) and the
changes to cluster_utils 3.0 in the driver process, one module per change (``patches``).
"""
