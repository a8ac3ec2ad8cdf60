#!/usr/bin/env bash
# bench-pack-delta.sh -- backups across a pack: a plain full backup of the
# packed Data.fs against `-B --pack-delta`, and what they cost to recover
# and to bring a standby up to date.
#
# Usage:   bash scripts/bench-pack-delta.sh [SIZE_MB] [packbench.py options...]
#
#   SIZE_MB   size of the Data.fs before the pack (default 1024; the
#             targets are stated at 1 GB)
#
# Provisions the venv (scripts/setup-venv.sh), builds the release binary,
# then runs bench/packbench.py with the venv's python.  The history (a cms
# site grown, packed, edited, packed again: bench/packhist.py) is generated
# through ZODB once per scenario, size and seed and cached in
# target/bench-cache/packhist-<scenario>-<N>mb-seed<S>.  E.g.
#
#   bash scripts/bench-pack-delta.sh 1024 --runs 3 --markdown
#   bash scripts/bench-pack-delta.sh 128 --runs 1
#   bash scripts/bench-pack-delta.sh 256 --scenario undo
#
# While the binary has no --pack-delta, its rows print "pack-delta: not
# built yet" and the rest runs.  Progress goes to stderr, the table to
# stdout.
#
# Environment: REPOZO_VENV as for scripts/setup-venv.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
PACKBENCH_COMMAND="bash scripts/bench-pack-delta.sh $*"
export PACKBENCH_COMMAND
leading_number SIZE_MB 1024 "$@"
shift "$SHIFT"
bash "$ROOT/scripts/setup-venv.sh"
bash "$ROOT/scripts/build-deps.sh"
(cd "$ROOT" && cargo build --release)
exec "$VENV/bin/python" "$ROOT/bench/packbench.py" --size-mb "$SIZE_MB" "$@"
