#!/usr/bin/env bash
# test.sh -- the whole test suite: the README's test command.
#
#   bash scripts/test.sh
#
# 1. `cargo test`: every test of the default build (the Python venv with
#    ZODB 6.4 is provisioned by the tests themselves, scripts/setup-venv.sh).
# 2. The S3 backend and S3 repositories (cargo feature `s3`): the library's
#    unit tests with the feature, and the integration tests the feature
#    adds (tests/it/s3/, the module `s3::`), against a moto S3 server that
#    the tests start and stop themselves (moto comes with the same venv).
#    The feature's first build takes about 5 minutes on 2 cores (aws-lc's
#    C code).
#
# Extra arguments go to every cargo test run (e.g. a test name filter);
# given any, the S3 leg runs the library and every integration test they
# select in the s3 build, instead of only the S3 ones.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test "$@"
if [ $# -eq 0 ]; then
    cargo test --features s3 --lib
    cargo test --features s3 --test it -- s3::
else
    cargo test --features s3 --lib --test it "$@"
fi
