"""``rl-relay reevaluate``: an HPO's best configurations again, on fresh seeds.

The command (``command``: files and processes) and its pure parts (``stats``: which
configurations, which seeds, the grid search settings, and the ranking with confidence
intervals that the report and the benchmark share). Which re-evaluation directory a request
continues is ``rl_relay.reevaluation_request``, below both this and the report.
"""
