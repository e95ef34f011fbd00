"""The learner's process, paid once per chained iteration: what it imports, how it ends.

Its training is checked bit for bit in ``test_learner_resume.py``; here: torch's optimizers
run without importing ``torch._dynamo`` (``learner.eager``), and ``exit_now`` skips only the
interpreter's teardown (exit handlers run, output is flushed, the exit code is kept).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

TRAIN_EVERY_OPTIMIZER = """
import io, sys
import torch
from rl_relay.learner import eager
changed = eager.install()
from stable_baselines3 import A2C, DQN, PPO, SAC
PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1).learn(64)
A2C("MlpPolicy", "CartPole-v1", n_steps=8).learn(32)
DQN("MlpPolicy", "CartPole-v1", learning_starts=8, batch_size=8, train_freq=1).learn(24)
model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=8, batch_size=8)
model.learn(24)
model.save(io.BytesIO())  # the optimizers' state_dict
print(changed, "torch._dynamo" in sys.modules)
"""


def test_torch_optimizers_train_without_importing_torch_dynamo() -> None:
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_EVERY_OPTIMIZER],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    changed, imported = out.stdout.split()
    assert int(changed) > 0
    assert imported == "False"


def test_without_install_torch_imports_it_as_shipped() -> None:
    """What install saves: without it the same training imports torch._dynamo."""
    code = TRAIN_EVERY_OPTIMIZER.replace("changed = eager.install()", "changed = 0")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    assert out.stdout.split() == ["0", "True"]


def test_exit_now_runs_exit_handlers_flushes_and_keeps_the_code() -> None:
    code = (
        "import atexit, sys\n"
        "from rl_relay.learner.__main__ import exit_now\n"
        "atexit.register(lambda: print(' handler', end=''))\n"
        "print('buffered', end='')\n"
        "sys.stderr.write('error output')\n"
        "exit_now(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stdout == "buffered handler"
    assert proc.stderr == "error output"
