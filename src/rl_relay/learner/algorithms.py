"""SB3 algorithms that keep schedules and log counters over a whole chain of iterations.

A training split into k processes calls ``learn()`` k times. SB3 computes the schedules'
progress against each call's own total and counts PPO's logged iterations from 0 in each
call; these subclasses use the whole chained horizon and the global iteration instead, so
a split training computes exactly the same numbers as one long ``learn()``.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.utils import LinearSchedule

from rl_relay.learner.config import OWN_RL_KEYS, activation_names


class HorizonMixin:
    """Progress (1 -> 0) against ``relay_horizon`` total timesteps when it is set."""

    relay_horizon: int | None = None

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        super()._update_current_progress_remaining(  # type: ignore[misc]
            num_timesteps, self.relay_horizon or total_timesteps
        )


class OnPolicyMixin(HorizonMixin):
    """``time/iterations`` counted over the chain, not per process."""

    def dump_logs(self, iteration: int = 0) -> None:
        per_rollout = self.n_steps * self.n_envs  # type: ignore[attr-defined]
        before = self._num_timesteps_at_start // per_rollout  # type: ignore[attr-defined]
        super().dump_logs(iteration + before)  # type: ignore[misc]


class RelayPPO(OnPolicyMixin, PPO):
    pass


class RelayA2C(OnPolicyMixin, A2C):
    pass


class RelaySAC(HorizonMixin, SAC):
    pass


class RelayTD3(HorizonMixin, TD3):
    pass


class RelayDQN(HorizonMixin, DQN):
    pass


ALGORITHMS = {"PPO": RelayPPO, "A2C": RelayA2C, "SAC": RelaySAC, "TD3": RelayTD3, "DQN": RelayDQN}
ON_POLICY = ("PPO", "A2C")


def activation_class(name: str) -> type:
    """The ``torch.nn`` module of an activation name of the schema (``leaky_relu`` ->
    ``LeakyReLU``): the schema's list is the one table of names."""
    import torch.nn as nn

    if name not in activation_names():
        raise ValueError(f"unknown activation_fn {name!r}; use one of {activation_names()}")
    by_folded_name = {attr.lower(): attr for attr in dir(nn)}
    return getattr(nn, by_folded_name[name.replace("_", "")])


def constructor_kwargs(rl_config: dict[str, Any]) -> dict[str, Any]:
    """rl_config -> SB3 keyword arguments: strings made objects, schedules applied."""
    kwargs = {k: v for k, v in rl_config.items() if k not in OWN_RL_KEYS}
    policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        policy_kwargs["activation_fn"] = activation_class(policy_kwargs["activation_fn"])
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    if isinstance(kwargs.get("train_freq"), list):
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
    if rl_config.get("schedule") == "linear":
        # rl-baselines3-zoo's "lin_<value>": from value down to 0 over the whole horizon
        for key in ("learning_rate", "clip_range"):
            if isinstance(kwargs.get(key), int | float):
                kwargs[key] = LinearSchedule(float(kwargs[key]), 0.0, 1.0)
    return kwargs
