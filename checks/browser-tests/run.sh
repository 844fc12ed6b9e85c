#!/usr/bin/env bash
# Browser tests of the counterexample viewer: build and start the `serve_synthetic` example
# (three synthetic traces on loopback ports), run the node tests against it in Debian's
# headless Chromium, and leave screenshots under target/browser-artifacts/.
#
#   bash checks/browser-tests/run.sh
#
# Needs: node >= 20 + npm, and /usr/bin/chromium (apt-get install -y chromium).
# Environment: PETREL_SERVE_BIN (prebuilt serve_synthetic), PETREL_SERVE_SECONDS (server
# lifetime, default 600), PETREL_ARTIFACTS (screenshot folder), PETREL_RENDER_BOUND_MS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export PETREL_ARTIFACTS="${PETREL_ARTIFACTS:-$ROOT/target/browser-artifacts}"
SERVE_SECONDS="${PETREL_SERVE_SECONDS:-600}"

if [ ! -x /usr/bin/chromium ] && [ -z "${PETREL_CHROMIUM:-}" ]; then
  echo "run.sh: /usr/bin/chromium is missing (apt-get install -y chromium)" >&2
  exit 1
fi

cd "$HERE"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi

cd "$ROOT"
# PETREL_SERVE_BIN: use an already built serve_synthetic instead of building it here.
SERVE_BIN="${PETREL_SERVE_BIN:-}"
if [ -z "$SERVE_BIN" ]; then
  cargo build -p petrel-checks --example serve_synthetic
  SERVE_BIN="$TARGET/debug/examples/serve_synthetic"
fi
mkdir -p "$PETREL_ARTIFACTS"
URLS_FILE="$(mktemp)"
"$SERVE_BIN" "$SERVE_SECONDS" >"$URLS_FILE" &
SERVER_PID=$!
cleanup() { kill "$SERVER_PID" 2>/dev/null || true; rm -f "$URLS_FILE"; }
trap cleanup EXIT

for _ in $(seq 1 600); do
  [ -s "$URLS_FILE" ] && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "run.sh: serve_synthetic exited early" >&2; exit 1; fi
  sleep 0.1
done
[ -s "$URLS_FILE" ] || { echo "run.sh: serve_synthetic printed no URLs" >&2; exit 1; }

read_url() { node -e 'const u=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(u[process.argv[2]])' "$URLS_FILE" "$1"; }
export PETREL_VIEW_URL="$(read_url view)"
export PETREL_LASSO_URL="$(read_url lasso)"
export PETREL_BIG_URL="$(read_url big)"
echo "viewer URLs: $PETREL_VIEW_URL $PETREL_LASSO_URL $PETREL_BIG_URL"

node --test "$HERE/"
echo "screenshots: $PETREL_ARTIFACTS"
