#!/usr/bin/env python3
"""STAND-IN learning command for the tests, not a learner: it keeps docs/CONTRACT.md.

"Training" is counting ticks: the model file is JSON ``{"ticks": n, "seed": s}``. It
continues from ``load_path``, ticks until ``(training_iteration + 1) * ticks`` (``ticks`` in
rl_config), on SIGTERM/SIGUSR1/SIGINT finishes the current tick, saves and exits 3, and at
the end writes ``progress.csv`` whose reward depends on the config, the seed and the ticks.
Behaviour on demand, from rl_config: ``fail_dirs`` (run directory names that exit 2),
``tick_seconds``, ``column`` (the reward column's name), ``log_ticks`` (append a
``progress.csv`` row per tick, as SB3 logs per rollout), ``exit3`` ("no_checkpoint": exit 3
at once without saving; "no_progress": save the loaded model unchanged and exit 3),
``detach`` (seconds: start a detached ``sleep`` that holds the output pipes open). Every call is
appended to ``calls.jsonl`` in the job's working directory, with the arguments it got before
the config's path (``argv``) and rl_config's ``note``, exactly as received.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

stop = []


def on_signal(signum, _frame):
    stop.append(signum)


for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
    signal.signal(sig, on_signal)

main = json.loads(Path(sys.argv[-1]).read_text())
rl = json.loads(Path(main["rl_config"]).read_text())
common = (
    json.loads(Path(main["rl_common_config"]).read_text()) if "rl_common_config" in main else {}
)
save = Path(rl["save_path"])
run_dir = save.parent
with open(run_dir.parent / "calls.jsonl", "a") as calls:
    calls.write(
        json.dumps(
            {
                "dir": run_dir.name,
                "load_path": rl["load_path"],
                "seed": common.get("seed"),
                "pid": os.getpid(),
                "argv": sys.argv[1:-1],
                "note": rl.get("note"),
            }
        )
        + "\n"
    )
print(f"stand-in learner in {run_dir.name}", flush=True)
print("stand-in stderr line", file=sys.stderr, flush=True)
if run_dir.name in rl.get("fail_dirs", []):
    print("failing on demand", file=sys.stderr)
    sys.exit(2)

if rl.get("detach"):
    # a daemon in its own session that keeps stdout/stderr open (rl: "detach": seconds)
    subprocess.Popen(["sleep", str(rl["detach"])], start_new_session=True)

ticks = json.loads(Path(rl["load_path"] + ".zip").read_text())["ticks"] if rl["load_path"] else 0
if rl.get("exit3") == "no_checkpoint":
    sys.exit(3)
if rl.get("exit3") == "no_progress":
    save.with_suffix(".zip").write_text(json.dumps({"ticks": ticks, "seed": common.get("seed")}))
    sys.exit(3)
target = (common.get("training_iteration", 0) + 1) * rl.get("ticks", 3)
log = Path(rl["log_path"])
log.mkdir(parents=True, exist_ok=True)
column = rl.get("column", "rollout/ep_rew_mean")
while ticks < target:
    if stop:
        save.with_suffix(".zip").write_text(
            json.dumps({"ticks": ticks, "seed": common.get("seed")})
        )
        print(f"checkpointed at tick {ticks} after signal {stop[0]}", flush=True)
        sys.exit(3)
    time.sleep(rl.get("tick_seconds", 0.0))
    ticks += 1
    if rl.get("log_ticks"):
        progress = log / "progress.csv"
        with open(progress, "a") as f:
            if f.tell() == 0:
                f.write(f"time/total_timesteps,{column}\n")
            f.write(f"{ticks},\n")
save.with_suffix(".zip").write_text(json.dumps({"ticks": ticks, "seed": common.get("seed")}))
reward = rl.get("learning_rate", 1.0) * ticks + (common.get("seed") or 0) % 7
if rl.get("log_ticks"):
    with open(log / "progress.csv", "a") as f:
        f.write(f"{ticks},{reward}\n")
else:
    (log / "progress.csv").write_text(f"{column},time/fps\n,10\n{reward},11\n,12\n")
