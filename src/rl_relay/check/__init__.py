"""``rl-relay check``: what would go wrong with an HPO settings file, before submission.

The command (``command``), what every check looks at (``context``), checks of the settings
file itself (``settings_checks``) and of what the jobs will get (``job_checks``).
"""
