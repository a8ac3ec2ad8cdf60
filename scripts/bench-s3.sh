#!/usr/bin/env bash
# bench-s3.sh -- benchmark repositories on S3 (-r s3://...) against a local
# S3 server (moto): full backup, incremental, recover and verify, each
# against the same operation on a local directory and against `aws s3 cp`
# of the same bytes.
#
# Usage:   bash scripts/bench-s3.sh [SIZE_MB] [s3bench.py options...]
#
#   SIZE_MB   size of the Data.fs in MB (default 512; moto holds what it
#             stores in its own process, so keep it moderate)
#
# Provisions the test venv (scripts/setup-venv.sh; it has moto), a separate
# venv with the AWS CLI (bench/requirements-s3.txt) in
# target/bench-cache/awscli-venv, builds target/release/repozo with the
# cargo feature s3, then runs bench/s3bench.py with the test venv's python.
# The Data.fs files are bench/bench.py's, generated once per profile and
# size into target/bench-cache (profile cms by default here). Extra options
# go to s3bench.py, e.g.
#
#   bash scripts/bench-s3.sh 512 --runs 5
#   bash scripts/bench-s3.sh 256 --runs 1 --ops full,recover --profile hex
#
# Progress goes to stderr, the markdown table to stdout.
#
# Environment: REPOZO_VENV as for scripts/setup-venv.sh.

set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"

leading_number SIZE_MB 512 "$@"
shift "$SHIFT"

bash "$ROOT/scripts/setup-venv.sh"

AWSVENV="$ROOT/target/bench-cache/awscli-venv"
REQ="$ROOT/bench/requirements-s3.txt"
STAMP="$AWSVENV/.requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$AWSVENV/bin/aws" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "bench-s3.sh: installing the AWS CLI into $AWSVENV" >&2
    rm -rf "$AWSVENV"
    mkdir -p "$(dirname "$AWSVENV")"
    "${REPOZO_PYTHON:-python3}" -m venv "$AWSVENV" >&2
    "$AWSVENV/bin/pip" install --quiet -r "$REQ" >&2
    echo "$WANT" >"$STAMP"
fi

(cd "$ROOT" && cargo build --release)
exec "$VENV/bin/python" "$ROOT/bench/s3bench.py" --size-mb "$SIZE_MB" \
    --aws "$AWSVENV/bin/aws" "$@"
