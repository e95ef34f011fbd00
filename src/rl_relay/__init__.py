"""rl-relay: hyperparameter optimisation of RL training with cluster_utils, in containers."""

__version__ = "0.1.0"
