#!/usr/bin/env bash
# Fault campaigns on real processes: `petrel campaign` (README, "Fault campaigns").
# Needs root (a network namespace per node), `ip`, `iptables` and `tc` (.ci/run installs
# them). Default: the CI run, 50 seeds, two campaigns at a time, 5 s of faults each
# (≈ 4–5 min on 2 cores). A soak: `SEEDS=1..500 bash scripts/campaign.sh`;
# other options of `petrel campaign` may follow (e.g. `--nemesis kill,wipe`).
#
# Every nemesis, meta servers killed too, duplication a→b on (`--no-dup` for one cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p petrel-node --bin petrel -p petrel-checks --bin petrel-check
exec target/release/petrel campaign --seeds "${SEEDS:-1..50}" --jobs 2 --duration 5 "$@"
