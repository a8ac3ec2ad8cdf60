#!/usr/bin/env bash
# test.sh -- the whole test suite: the README's test command.
#
#   bash scripts/test.sh
#
# `cargo test`: every test of the default build, the build users get
# (S3 included: the tests under tests/it/s3/, module `s3::`, run against
# a moto S3 server that they start and stop themselves). The Python venv
# with ZODB 6.4 and moto is provisioned by the tests themselves
# (scripts/setup-venv.sh).
#
# Extra arguments go to cargo test (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-deps.sh   # nasm and autotools, for the ISA-L built in
cargo test "$@"
