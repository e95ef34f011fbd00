"""``rl-relay check``: what would go wrong with an HPO settings file, before submission.

The rules (``rules``: the one function ``rl-relay check`` and ``rl-relay hpo`` both call),
the command that prints them (``command``), what every check looks at (``context``),
checks of the settings file itself (``settings_checks``) and of what the jobs will get
(``job_checks``).
"""
