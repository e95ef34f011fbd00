"""``rl-relay report``: an HTML page with figures of an HPO's results.

The command (``command``), tolerant readers of files an HPO may still be writing
(``files``), the results read into plain data (``load``, ``model``), the figures and the
page (``figures``, ``page``) and the sections for PBT and the re-evaluation
(``pbt_section``, ``reevaluation_section``).
"""
