#!/usr/bin/env bash
# Petrel's test command: release-mode tests (model checks are slow in debug), then every
# scenario checked exhaustively (exit 0 only if complete and every property holds).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --workspace
cargo run --release -q -p petrel-checks --bin petrel-check -- check --all --threads 2
