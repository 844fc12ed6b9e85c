#!/usr/bin/env bash
# Petrel's test command: release-mode tests (model checks are slow in debug), then the
# mutant matrix: exit 0 only if every mutant is caught by its property and every clean
# scenario is checked completely with every property holding.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --release --all-targets -- -D warnings
cargo test --release --workspace
cargo run --release -q -p petrel-checks --bin petrel-check -- mutants --threads 2
