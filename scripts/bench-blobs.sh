#!/usr/bin/env bash
# bench-blobs.sh -- benchmark our blob backup and restore (--blob-dir)
# against cp -a and rsync --link-dest of the blob directory.
#
# Usage:   bash scripts/bench-blobs.sh [N_BLOBS] [blobbench.py options...]
#
#   N_BLOBS   number of blob files generated (default 50000, ~3 GB; the
#             size scales with it, e.g. 2000 for a ~120 MB quick run)
#
# Provisions the venv (scripts/setup-venv.sh), installs rsync with apt-get
# if missing, builds the release binary, then runs bench/blobbench.py with
# the venv's python.  The FileStorage and its blob directory are generated
# through ZODB (bench/blobgen.py) once per N_BLOBS and cached in
# target/bench-cache/blobs-<N>.  Extra options go to blobbench.py, e.g.
#
#   bash scripts/bench-blobs.sh 50000 --runs 5
#   bash scripts/bench-blobs.sh 2000 --runs 1 --ops full,restore
#
# Progress goes to stderr, the markdown table to stdout.  Needs about
# 7 x the data size of free disk (cache: 2 trees; work: store, copies).
#
# Environment: REPOZO_VENV as for scripts/setup-venv.sh.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

leading_number N_BLOBS 50000 "$@"
shift "$SHIFT"

bash "$ROOT/scripts/setup-venv.sh"
if ! command -v rsync >/dev/null 2>&1; then
    echo "bench-blobs.sh: installing rsync (the baseline of the incremental)" >&2
    apt-get install -y rsync >&2 || { apt-get update >&2 && apt-get install -y rsync >&2; }
fi
(cd "$ROOT" && cargo build --release)
exec "$VENV/bin/python" "$ROOT/bench/blobbench.py" --blobs "$N_BLOBS" "$@"
