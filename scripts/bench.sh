#!/usr/bin/env bash
# bench.sh -- benchmark our repozo against ZODB 6.4's repozo.
#
# Usage:   bash scripts/bench.sh [SIZE_MB] [bench.py options...]
#
#   SIZE_MB   size of the generated Data.fs in MB (default 512; the targets
#             are stated for 512 and 2048)
#
# Provisions the venv (scripts/setup-venv.sh), builds the release binary,
# then runs bench/bench.py with the venv's python.  The Data.fs is generated
# through ZODB once per profile and size and cached in
# target/bench-cache/size-<N>mb (profile hex) or <profile>-size-<N>mb.
# Extra options go to bench.py, e.g.
#
#   bash scripts/bench.sh 2048 --markdown
#   bash scripts/bench.sh 256 --runs 1 --ops full,incr-q-cron
#   BENCH_PROFILE=cms bash scripts/bench.sh 512   # or: ... 512 --profile cms
#
# (see `.venv/bin/python bench/bench.py --help`).  Progress goes to stderr,
# the result table to stdout.
#
# Environment: REPOZO_VENV as for scripts/setup-venv.sh.
#   BENCH_FEATURES  cargo features added to the measured (default) build.
#   BENCH_PROFILE   data profile: hex (default), cms or bulk (see
#                   bench/gendata.py); a --profile option given to this
#                   script wins.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

leading_number SIZE_MB 512 "$@"
shift "$SHIFT"

bash "$ROOT/scripts/setup-venv.sh"
bash "$ROOT/scripts/build-deps.sh"
FEATURES="${BENCH_FEATURES:-}"
if [ -n "$FEATURES" ]; then
    (cd "$ROOT" && cargo build --release --features "$FEATURES")
else
    (cd "$ROOT" && cargo build --release)
fi
PROFILE_ARGS=()
if [ -n "${BENCH_PROFILE:-}" ]; then
    PROFILE_ARGS=(--profile "$BENCH_PROFILE")
fi
# bench.py's argparse keeps the last --profile: one in "$@" wins.
exec "$VENV/bin/python" "$ROOT/bench/bench.py" --size-mb "$SIZE_MB" \
    "${PROFILE_ARGS[@]}" "$@"
