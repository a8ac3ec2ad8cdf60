#!/usr/bin/env bash
# setup-venv.sh -- provision the Python venv used by the test suite.
#
# The Rust tests compare against ZODB 6.4's real repozo and use real ZODB to
# write fixtures (tests/py/zodbtool.py, tests/py/repozo_shim.py).  This script
# creates that venv and installs the exact pins of tests/py/requirements.txt.
#
# Usage:   bash scripts/setup-venv.sh
#
# Environment:
#   REPOZO_VENV    venv directory (default: <repo root>/.venv).  A relative
#                  path is taken relative to the repository root, the same
#                  way tests/it/common/py.rs resolves it.
#   REPOZO_PYTHON  interpreter used to create the venv (default: python3).
#
# Idempotent: when <venv>/bin/python can `import ZODB` and the stamp file
# <venv>/.repozo-requirements.sha256 holds the sha256 of requirements.txt,
# nothing is installed (takes well under a second).  Concurrent invocations
# (parallel test processes) serialise on an flock(1) lock file <venv>.lock.
#
# Any failure exits non-zero with a message starting "setup-venv.sh: ERROR".
# Nothing goes to stdout; progress and pip output go to stderr.

set -euo pipefail

die() {
    echo "setup-venv.sh: ERROR: $*" >&2
    exit 1
}
info() {
    echo "setup-venv.sh: $*" >&2
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" \
    || die "cannot determine the repository root"
REQ="$ROOT/tests/py/requirements.txt"
PYTHON="${REPOZO_PYTHON:-python3}"

VENV="${REPOZO_VENV:-$ROOT/.venv}"
case "$VENV" in
    /*) ;;
    *) VENV="$ROOT/$VENV" ;;
esac
# Strip trailing slashes (but keep "/" from becoming empty, and refuse it).
while [ "${#VENV}" -gt 1 ] && [ "${VENV%/}" != "$VENV" ]; do
    VENV="${VENV%/}"
done
[ "$VENV" != "/" ] || die "refusing to use / as the venv directory"

STAMP="$VENV/.repozo-requirements.sha256"
LOCK="$VENV.lock"

# -- prerequisites -----------------------------------------------------------
[ -f "$REQ" ] || die "requirements file not found: $REQ"
command -v flock >/dev/null 2>&1 \
    || die "flock not found (Debian package util-linux)"
command -v sha256sum >/dev/null 2>&1 \
    || die "sha256sum not found (Debian package coreutils)"

mkdir -p "$(dirname "$VENV")" \
    || die "cannot create parent directory of $VENV"

# -- serialise concurrent runs -------------------------------------------------
exec 9>"$LOCK" || die "cannot open lock file $LOCK"
flock -w 1800 9 || die "timed out after 30 min waiting for lock $LOCK"

want_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"

venv_imports_zodb() {
    [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" -c 'import ZODB' >/dev/null 2>&1
}

# -- fast path -----------------------------------------------------------------
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ] \
        && venv_imports_zodb; then
    info "venv up to date: $VENV"
    exit 0
fi

# -- (re)create the venv if it has no working interpreter ----------------------
rm -f "$STAMP"
if [ -e "$VENV" ] && ! { [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }; then
    # Only delete what is recognisably a venv (or an empty directory).
    if [ -f "$VENV/pyvenv.cfg" ] || [ -z "$(ls -A "$VENV" 2>/dev/null)" ]; then
        info "removing broken venv $VENV"
        rm -rf "$VENV" || die "cannot remove broken venv $VENV"
    else
        die "$VENV exists but is not a working venv; refusing to delete it" \
            "(remove it yourself or set REPOZO_VENV)"
    fi
fi

if [ ! -e "$VENV" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "interpreter '$PYTHON' not found (set REPOZO_PYTHON)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || die "$PYTHON is older than 3.9; ZODB 6.4 needs a newer Python"
    info "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV" >&2 \
        || die "'$PYTHON -m venv $VENV' failed" \
               "(on Debian/Ubuntu: apt-get install python3-venv)"
fi

# -- install the pins ------------------------------------------------------------
info "installing pinned packages from $REQ"
"$VENV/bin/python" -m pip --version >/dev/null 2>&1 \
    || die "pip is not available in $VENV"
"$VENV/bin/python" -m pip install --no-input --disable-pip-version-check \
        -r "$REQ" >&2 \
    || die "pip install -r $REQ failed"
"$VENV/bin/python" -m pip check >&2 \
    || die "pip check reports broken dependencies in $VENV"

# -- verify what the tests rely on ------------------------------------------------
"$VENV/bin/python" - >&2 <<'PYEOF' || die "installed venv fails the import check"
import importlib.metadata as md
import BTrees.OOBTree, persistent.mapping, transaction, zope.testing
import ZODB, ZODB.FileStorage, ZODB.fsIndex
from ZODB.scripts import repozo
ver = md.version("ZODB")
if ver != "6.4":
    raise SystemExit("expected ZODB 6.4, found %s" % ver)
print("setup-venv.sh: ZODB %s OK" % ver)
PYEOF
[ -x "$VENV/bin/repozo" ] || die "console script $VENV/bin/repozo missing"

printf '%s\n' "$want_hash" > "$STAMP.tmp" && mv -f "$STAMP.tmp" "$STAMP" \
    || die "cannot write stamp file $STAMP"
info "venv ready: $VENV"
