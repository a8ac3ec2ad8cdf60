#!/usr/bin/env bash
# test.sh -- the whole test suite: the README's test command.
#
#   bash scripts/test.sh
#
# 1. `cargo test`: every test of the default build (the Python venv with
#    ZODB 6.4 is provisioned by the tests themselves, scripts/setup-venv.sh).
# 2. The S3 backend and S3 repositories (tests/backend.rs, tests/s3_repo.rs,
#    tests/s3_blobs.rs;
#    cargo feature `s3`) against a moto S3 server that the
#    tests start and stop themselves (moto comes with the same venv). The
#    feature's first build takes about 5 minutes on 2 cores (aws-lc's C code).
#
# Extra arguments go to both cargo test runs (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test "$@"
cargo test --features s3 --lib --test backend --test s3_repo --test s3_blobs "$@"
