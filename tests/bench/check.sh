#!/usr/bin/env bash
# Times `dp ls` and `dp check` on generated projects of growing size, with hyperfine
# (Debian/Ubuntu: apt-get install hyperfine). Run from the repository root:
#
#   bash tests/bench/check.sh [sizes...]        # default: 100 1000 5000
#
# Builds dp and the project generator in release mode first (a cold build takes ~20 minutes on
# 2 cores). Reports the median, min and max of ten runs of each command, in milliseconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
sizes=("${@:-100 1000 5000}")
sizes=(${sizes[@]})

cargo build --release -q -p dp-cli --bin dp
cargo build --release -q -p dp-engine --example generate_project
dp="$PWD/target/release/dp"
generate="$PWD/target/release/examples/generate_project"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for n in "${sizes[@]}"; do
  "$generate" --models "$n" --out "$work/p$n" --data example_project/data/raw > /dev/null
done
commands=()
for n in "${sizes[@]}"; do
  commands+=(-n "ls $n models" "$dp ls --project-dir $work/p$n")
done
for n in "${sizes[@]}"; do
  commands+=(-n "check $n models" "$dp check -q --project-dir $work/p$n")
done
hyperfine --warmup 1 --runs 10 --style basic --export-json "$work/results.json" "${commands[@]}" > /dev/null
python3 - "$work/results.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print("| command | median | min | max |")
print("|---|---|---|---|")
for r in results:
    ms = lambda s: f"{s * 1000:.0f} ms"
    print(f"| {r['command']} | {ms(r['median'])} | {ms(r['min'])} | {ms(r['max'])} |")
PY
