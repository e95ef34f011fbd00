"""The default learner: stable-baselines3 on a Gymnasium environment, resuming exactly.

``python -m rl_relay.learner MAIN_CONFIG.json`` (or ``rl-relay-learn``); the interface to
run_learning is docs/CONTRACT.md.
"""
