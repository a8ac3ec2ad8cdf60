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
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
leading_number LEN 2000 "$@"
shift "$SHIFT"
bash "$ROOT/scripts/setup-venv.sh"
bash "$ROOT/scripts/build-deps.sh"
(cd "$ROOT" && cargo build --release)
exec "$VENV/bin/python" "$ROOT/bench/longchain.py" --len "$LEN" \
    --ours "$ROOT/target/release/repozo" --theirs "$VENV/bin/repozo" \
    --python "$VENV/bin/python" "$@"
