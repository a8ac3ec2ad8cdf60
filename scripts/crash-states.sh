#!/usr/bin/env bash
# crash-states.sh -- power loss: every crash state of every operation that
# writes (docs/power-loss.md), in both persistence models.
#
#   bash scripts/crash-states.sh
#
# Records each operation of the release binary under strace, builds every
# crash state ALICE explores (weak and strong model) and checks it
# (tests/it/crash/). Prints the states per operation and model, and ends
# with one line `crash-states: N states, F failures`; exits non-zero on any
# failure. The normal suite runs a sample of the same (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v strace >/dev/null 2>&1; then
    echo "crash-states: strace is not installed (apt-get install strace): nothing was explored" >&2
    exit 2
fi
cargo build --release --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
REPOZO_CRASH_STATES=full REPOZO_CRASH_BIN="$PWD/target/release/repozo" \
    cargo test --quiet --test it crash:: -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
# cargo's progress dots (--quiet) can precede a line: strip them.
sed -i 's/^\.*//' "$log"
grep -E '^crash-states: .+ \((weak|strong) model\)|^  FAIL ' "$log" || true
summary=$(grep -E '^crash-states: [0-9]+ states, [0-9]+ failures$' "$log" | tail -1 || true)
if [ "$status" -ne 0 ]; then
    # A failed self-test or setup: show why.
    grep -E 'panicked|^test .* FAILED|^---- ' -A6 "$log" | head -60 >&2 || true
fi
if [ -z "$summary" ]; then
    summary="crash-states: 0 states, 1 failures"
fi
if [ "$status" -ne 0 ] && [[ "$summary" == *", 0 failures" ]]; then
    summary="${summary%, 0 failures}, 1 failures"
fi
echo "$summary"
exit "$status"
