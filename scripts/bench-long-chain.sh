#!/usr/bin/env bash
# bench-long-chain.sh -- our repozo against ZODB 6.4's on chains of
# thousands of small files (issue 9, target 4).
#
# Usage:   bash scripts/bench-long-chain.sh [LEN] [longchain.py options...]
#
#   LEN   files per chain (default 2000), written by ZODB's own repozo
#         after each of LEN small transactions; cached in
#         target/bench-cache/longchain-<LEN>.
#
# Provisions the venv (scripts/setup-venv.sh), builds the release binary,
# then runs bench/longchain.py, e.g.
#
#   bash scripts/bench-long-chain.sh 2000 --runs 5 --markdown
#
# Environment: REPOZO_VENV as for scripts/setup-venv.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LEN=2000
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    LEN="$1"
    shift
fi
case "$LEN" in
    ''|*[!0-9]*) echo "bench-long-chain.sh: LEN must be a number, got '$LEN'" >&2
                 exit 2 ;;
esac
VENV="${REPOZO_VENV:-$ROOT/.venv}"
case "$VENV" in
    /*) ;;
    *) VENV="$ROOT/$VENV" ;;
esac
bash "$ROOT/scripts/setup-venv.sh"
(cd "$ROOT" && cargo build --release)
exec "$VENV/bin/python" "$ROOT/bench/longchain.py" --len "$LEN" \
    --ours "$ROOT/target/release/repozo" --theirs "$VENV/bin/repozo" \
    --python "$VENV/bin/python" "$@"
