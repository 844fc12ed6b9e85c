#!/usr/bin/env bash
# Browser tests of the counterexample viewer, in Debian's headless Chromium:
#
#  * real counterexamples, made by the real CLI (`petrel-check check ... --trace-out
#    target/traces/*.json`), each served by `petrel-check view`:
#      s1.json        S1 dup-restart-in-prepare / s1-min-checkpoint-reset: SAFE-6 (safety)
#      s2-lasso.json  S2 dup-create-reply-lost / s2-app-exist-is-failure --property LIVE-3 (a lasso)
#      s4.json        S4 learner-primary-dies / s4-recovering-not-cleared: SAFE-9 (safety)
#      s5.json        S5 client-primary-crash / s5-client-no-refresh: LIVE-2 (liveness)
#      s4-lasso.json  S4 with --property LIVE-2 (a lasso)
#    the tests check lanes, the property, → through every step's diff, the loop marker and
#    Play loop (counterexamples.test.mjs);
#  * `petrel-check explore` on S1 and on S4: the stateright Explorer URL each prints must open
#    the same path, ending in the violating state, and the viewer it serves must link there;
#  * synthetic traces from the `serve_synthetic` example (a safety trace, a lasso, and the
#    1,000-step × 10-actor trace whose first render is timed; viewer.test.mjs).
#
#   bash checks/browser-tests/run.sh
#
# Screenshots go to target/browser-artifacts/ (viewer-s1.png, viewer-s2-lasso.png, ...);
# PETREL_UPDATE_DOCS=1 also copies the two README screenshots (viewer-s1.png and
# viewer-s2-lasso.png) to docs/.
#
# Needs: node >= 20 + npm, /usr/bin/chromium (apt-get install -y chromium), cargo.
# Environment: PETREL_CHECK_BIN / PETREL_SERVE_BIN (prebuilt petrel-check / serve_synthetic),
# PETREL_THREADS (checker threads, default 2), PETREL_SERVE_SECONDS (server lifetime,
# default 600), PETREL_ARTIFACTS (screenshot folder), PETREL_RENDER_BOUND_MS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export PETREL_ARTIFACTS="${PETREL_ARTIFACTS:-$ROOT/target/browser-artifacts}"
TRACES="$ROOT/target/traces"
SERVE_SECONDS="${PETREL_SERVE_SECONDS:-600}"
THREADS="${PETREL_THREADS:-2}"
T_START=$(date +%s)

if [ ! -x /usr/bin/chromium ] && [ -z "${PETREL_CHROMIUM:-}" ]; then
  echo "run.sh: /usr/bin/chromium is missing (apt-get install -y chromium)" >&2
  exit 1
fi

cd "$HERE"
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi

cd "$ROOT"
PC="${PETREL_CHECK_BIN:-}"
SERVE_BIN="${PETREL_SERVE_BIN:-}"
if [ -z "$PC" ] || [ -z "$SERVE_BIN" ]; then
  # Release, like scripts/test.sh, so after it this is only a freshness check.
  cargo build --release -q -p petrel-checks --bin petrel-check --example serve_synthetic
  PC="${PC:-$TARGET/release/petrel-check}"
  SERVE_BIN="${SERVE_BIN:-$TARGET/release/examples/serve_synthetic}"
fi
mkdir -p "$PETREL_ARTIFACTS" "$TRACES"

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# wait_for FILE PID PATTERN: wait until FILE has a line matching PATTERN; print that line.
wait_for() {
  local file=$1 pid=$2 pattern=$3
  for _ in $(seq 1 1800); do
    if grep -q -- "$pattern" "$file" 2>/dev/null; then grep -m1 -- "$pattern" "$file"; return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: server exited early; its output:" >&2; cat "$file" >&2; return 1
    fi
    sleep 0.1
  done
  echo "run.sh: timed out waiting for '$pattern' in $file" >&2
  return 1
}

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# 1. `explore` on S4 and S1 first: each checks its scenario before it serves, and runs meanwhile.
declare -A EXPLORE_PID
explore() {
  local name=$1; shift
  local port
  port="$(free_port)"
  "$PC" explore "$@" --threads "$THREADS" --addr "127.0.0.1:$port" --view-addr 127.0.0.1:0 \
    >"$TMP/explore-$name.out" 2>"$TMP/explore-$name.err" &
  EXPLORE_PID[$name]=$!
  PIDS+=("$!")
}
explore s4 learner-primary-dies --mutant s4-recovering-not-cleared
explore s1 dup-restart-in-prepare --mutant s1-min-checkpoint-reset

# 2. Real counterexamples through the CLI. `check` exits 1 when a property is violated.
trace() {
  local out=$1; shift
  local rc=0
  "$PC" check "$@" --threads "$THREADS" --json --trace-out "$out" >"$out.log" 2>&1 || rc=$?
  if [ "$rc" -ne 1 ] || [ ! -s "$out" ]; then
    echo "run.sh: petrel-check check $* exited $rc without a counterexample in $out:" >&2
    cat "$out.log" >&2
    exit 1
  fi
  echo "trace: $out ($(node -e 'const t=require(process.argv[1]);console.log(t.property.id+", "+t.steps.length+" steps, loop_start "+t.loop_start)' "$out"))"
}
T0=$(date +%s)
trace "$TRACES/s1.json" dup-restart-in-prepare --mutant s1-min-checkpoint-reset
trace "$TRACES/s2-lasso.json" dup-create-reply-lost --mutant s2-app-exist-is-failure --property LIVE-3
trace "$TRACES/s4.json" learner-primary-dies --mutant s4-recovering-not-cleared
trace "$TRACES/s5.json" client-primary-crash --mutant s5-client-no-refresh --property LIVE-2
trace "$TRACES/s4-lasso.json" learner-primary-dies --mutant s4-recovering-not-cleared --property LIVE-2
echo "traces made in $(( $(date +%s) - T0 )) s"

# 3. Viewers: one `petrel-check view` per real trace, plus the synthetic ones. Started here
# (not in a $(...) subshell) so that their PIDs are ours to stop.
declare -A VIEW_PID
for name in s1 s2-lasso s4 s5 s4-lasso; do
  "$PC" view "$TRACES/$name.json" --addr 127.0.0.1:0 >"$TMP/$name.out" 2>&1 &
  VIEW_PID[$name]=$!
  PIDS+=("$!")
done
"$SERVE_BIN" "$SERVE_SECONDS" >"$TMP/synthetic.out" &
SYNTH_PID=$!
PIDS+=("$SYNTH_PID")

view_url() { wait_for "$TMP/$1.out" "${VIEW_PID[$1]}" '^viewer on ' | sed 's/^viewer on //'; }
PETREL_S1_URL="$(view_url s1)"
PETREL_S2_LASSO_URL="$(view_url s2-lasso)"
PETREL_S4_URL="$(view_url s4)"
PETREL_S5_URL="$(view_url s5)"
PETREL_S4_LASSO_URL="$(view_url s4-lasso)"
export PETREL_S1_URL PETREL_S2_LASSO_URL PETREL_S4_URL PETREL_S5_URL PETREL_S4_LASSO_URL
export PETREL_S1_TRACE="$TRACES/s1.json" PETREL_S4_TRACE="$TRACES/s4.json"

wait_for "$TMP/synthetic.out" "$SYNTH_PID" '"big"' >/dev/null
read_url() { node -e 'const u=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(u[process.argv[2]])' "$TMP/synthetic.out" "$1"; }
PETREL_VIEW_URL="$(read_url view)"
PETREL_LASSO_URL="$(read_url lasso)"
PETREL_BIG_URL="$(read_url big)"
export PETREL_VIEW_URL PETREL_LASSO_URL PETREL_BIG_URL

# explore_url NAME PREFIX: the URL after PREFIX in what `explore NAME` printed.
explore_url() { wait_for "$TMP/explore-$1.out" "${EXPLORE_PID[$1]}" "^$2" | sed "s/^$2//"; }
PETREL_S1_EXPLORER_URL="$(explore_url s1 'counterexample in the Explorer: ')"
PETREL_S1_EXPLORE_VIEW_URL="$(explore_url s1 'counterexample viewer: ')"
PETREL_EXPLORER_URL="$(explore_url s4 'counterexample in the Explorer: ')"
PETREL_EXPLORE_VIEW_URL="$(explore_url s4 'counterexample viewer: ')"
export PETREL_S1_EXPLORER_URL PETREL_S1_EXPLORE_VIEW_URL PETREL_EXPLORER_URL PETREL_EXPLORE_VIEW_URL
for name in s1 s4; do
  echo "explore $name:"
  sed 's/^/  /' "$TMP/explore-$name.out"
done
echo "viewers: s1 $PETREL_S1_URL  s2-lasso $PETREL_S2_LASSO_URL  s4 $PETREL_S4_URL  s5 $PETREL_S5_URL  s4-lasso $PETREL_S4_LASSO_URL"
echo "synthetic: $PETREL_VIEW_URL $PETREL_LASSO_URL $PETREL_BIG_URL"

# 4. The tests, one file after the other (the render timing should not share the CPU).
T0=$(date +%s)
status=0
for f in counterexamples.test.mjs viewer.test.mjs; do
  node --test "$HERE/$f" || status=1
done
echo "browser tests ran in $(( $(date +%s) - T0 )) s; everything in $(( $(date +%s) - T_START )) s"
echo "screenshots: $PETREL_ARTIFACTS"
[ "$status" = 0 ] || { echo "run.sh: browser tests failed" >&2; exit 1; }

if [ "${PETREL_UPDATE_DOCS:-}" = 1 ]; then
  cp "$PETREL_ARTIFACTS/viewer-s1.png" "$PETREL_ARTIFACTS/viewer-s2-lasso.png" "$ROOT/docs/"
  echo "copied viewer-s1.png and viewer-s2-lasso.png to docs/"
fi
