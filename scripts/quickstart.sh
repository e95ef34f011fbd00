#!/usr/bin/env bash
# Set up and run the quick start: a small local HPO of PPO on CartPole-v1 (no cluster,
# no container), three chained training iterations per job with early stopping (ASHA) at
# their boundaries, an HTML report, and the best configuration re-evaluated on 8 fresh
# seeds (the honest score).
# Extra arguments are passed to rl-relay hpo as override strings, e.g.
#   bash scripts/quickstart.sh 'optimization_setting.number_of_samples=8'
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup.sh
start=$SECONDS
source "$repo/scripts/setup.sh"
cd "$repo"
ready=$SECONDS
# A new name each time: rl-relay hpo started again with the same name continues that HPO
# (rl-relay hpo --local hp_optim/hp_optim_ppo_local.json 'optimization_procedure_name="..."').
name="ppo_local_$(date +%Y%m%d-%H%M%S)"
results="$repo/results"
overrides=("optimization_procedure_name=\"$name\"" "results_dir=\"$results\"" "$@")
rl-relay check --local hp_optim/hp_optim_ppo_local.json "${overrides[@]}"
rl-relay hpo --local hp_optim/hp_optim_ppo_local.json "${overrides[@]}"
searched=$SECONDS
rl-relay report "$results/$name"
rl-relay reevaluate "$results/$name" --top 1 --runs 8 --local
rl-relay report "$results/$name"  # now with the re-evaluation
# What the times were measured on, so that they can be compared with the README's.
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "quick start: set-up $((ready - start)) s, then $((SECONDS - ready)) s (the HPO $((searched - ready)) s)" \
    "on $(nproc) cores (${cpu:-unknown CPU}), load average now $(cut -d ' ' -f 1-3 /proc/loadavg);" \
    "the report: $results/$name/report/index.html"
