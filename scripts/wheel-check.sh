#!/usr/bin/env bash
# wheel-check.sh -- build the wheel, install it as an operator would, and
# run the demo through the installed command, against ZODB's repozo.
#
# Usage: bash scripts/wheel-check.sh [WHEEL]
#
# Without WHEEL, builds it with scripts/wheel.sh. Then, in a temporary
# directory:
#   1. a fresh venv, with a stand-in bin/repozo (ZODB's console script's
#      name); `pip install` of the wheel from the file alone (--no-index);
#   2. everything after that runs under `env -i` with PATH holding only
#      the venv's bin/, /usr/bin and /bin, and HOME the temporary
#      directory: it first asserts that neither cargo nor rustc can be
#      found, and that the venv's bin/ holds repozo-rs and its repozo is
#      still the stand-in;
#   3. the demo through the installed repozo-rs: --version, a full backup
#      of tests/data/small.fs, ZODB commits more, an incremental backup,
#      verify, recover; ZODB's repozo (the project venv, made by
#      scripts/setup-venv.sh) recovers the same repository, and both
#      recovered files are byte for byte the backed-up Data.fs; repozo-rs
#      verifies and recovers a repository ZODB's repozo wrote;
#   4. `pip uninstall` removes repozo-rs and leaves bin/repozo alone.
# CI runs it after the test suite (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { echo "wheel-check.sh: FAILED: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then
    wheel=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
    start=$(date +%s)
    wheel=$(bash scripts/wheel.sh | tail -1)
    echo "wheel-check.sh: wheel.sh took $(( $(date +%s) - start )) s"
fi
[ -f "$wheel" ] || die "no wheel at $wheel"
bash scripts/setup-venv.sh
ref_repozo="$ROOT/.venv/bin/repozo"    # ZODB 6.4's console script
zodb_python="$ROOT/.venv/bin/python"
[ -x "$ref_repozo" ] || die "ZODB's repozo missing: $ref_repozo"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
venv="$tmp/venv"
python3 -m venv "$venv"
printf '#!/bin/sh\necho "the stand-in for ZODB'"'"'s repozo"\n' > "$venv/bin/repozo"
chmod +x "$venv/bin/repozo"
stand_in=$(sha256sum < "$venv/bin/repozo")
"$venv/bin/python" -m pip install --quiet --no-index --disable-pip-version-check "$wheel"

# Everything below runs with this environment only: no cargo, no rustup.
clean() {
    env -i PATH="$venv/bin:/usr/bin:/bin" HOME="$tmp" LANG=C.UTF-8 "$@"
}
clean bash -c '! command -v cargo && ! command -v rustc' >/dev/null \
    || die "cargo or rustc is on the clean PATH: $(clean bash -c 'command -v cargo rustc')"
echo "wheel-check.sh: no cargo, no rustc on PATH=$venv/bin:/usr/bin:/bin"
[ "$(clean bash -c 'command -v repozo-rs')" = "$venv/bin/repozo-rs" ] \
    || die "repozo-rs is not the venv's"
[ "$(sha256sum < "$venv/bin/repozo")" = "$stand_in" ] \
    || die "installing the wheel changed bin/repozo"

echo "== repozo-rs --version"
clean repozo-rs --version
clean repozo-rs --version | grep -q "^repozo-rs " || die "--version does not name repozo-rs"

demo="$tmp/demo"
mkdir -p "$demo/backups" "$demo/zodb-backups"
cp tests/data/small.fs "$demo/Data.fs"
cd "$demo"
echo "== full backup: repozo-rs -B -v -f Data.fs -r backups"
clean repozo-rs -B -v -f Data.fs -r backups
# The next backup's file name is its time to the second.
sleep 1
"$zodb_python" "$ROOT/tests/py/zodbtool.py" grow Data.fs --txns 5 --seed 7 >/dev/null
echo "== incremental backup (-z): repozo-rs -B -z -f Data.fs -r backups"
clean repozo-rs -B -z -f Data.fs -r backups
ls backups
ls backups | grep -q '\.deltafsz$' || die "no incremental backup was written"
echo "== verify: repozo-rs -V -r backups"
clean repozo-rs -V -r backups
echo "== recover: repozo-rs -R -r backups -o ours.fs, and ZODB's repozo -R -o theirs.fs"
clean repozo-rs -R -r backups -o ours.fs
"$ref_repozo" -R -r backups -o theirs.fs
cmp Data.fs ours.fs || die "repozo-rs did not recover the backed-up Data.fs"
cmp Data.fs theirs.fs || die "ZODB's repozo did not recover repozo-rs's backups"
echo "both recovered files are byte for byte the backed-up Data.fs"
echo "== ZODB's repozo backs up, the installed repozo-rs verifies and recovers"
"$ref_repozo" -B -f Data.fs -r zodb-backups
clean repozo-rs -V -r zodb-backups
clean repozo-rs -R -r zodb-backups -o from-zodb.fs
cmp Data.fs from-zodb.fs || die "repozo-rs did not recover ZODB's backup"
echo "== S3 from the installed wheel: keys, region and endpoint from a profile in ~/.aws (no AWS_* variable)"
port=$("$zodb_python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$tmp/moto.log" 2>&1 </dev/null &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Waits up to 60 s for moto, then creates the bucket (moto takes unsigned requests).
"$zodb_python" - "$port" <<'PY' || die "moto did not start: $(cat "$tmp/moto.log")"
import sys, time, urllib.request
url = "http://127.0.0.1:%s/wheel-check" % sys.argv[1]
for _ in range(120):
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=5)
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit(1)
PY
mkdir -p "$tmp/.aws"
printf '[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n' > "$tmp/.aws/credentials"
printf '[default]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:%s\n' "$port" > "$tmp/.aws/config"
clean repozo-rs -B -f Data.fs -r s3://wheel-check/site
clean repozo-rs -V -r s3://wheel-check/site
clean repozo-rs -R -r s3://wheel-check/site -o from-s3.fs
cmp Data.fs from-s3.fs || die "repozo-rs did not recover its S3 backup"
echo "backed up to, verified and recovered from s3://wheel-check/site, keys from $tmp/.aws"
kill $moto 2>/dev/null || true
cd "$ROOT"

echo "== pip uninstall repozo-rs"
"$venv/bin/python" -m pip uninstall --quiet --yes repozo-rs
[ ! -e "$venv/bin/repozo-rs" ] || die "uninstall left bin/repozo-rs"
[ "$(sha256sum < "$venv/bin/repozo")" = "$stand_in" ] \
    || die "uninstalling the wheel changed bin/repozo"
echo "wheel-check.sh: OK: $(basename "$wheel") installs repozo-rs without Rust, matches ZODB's repozo, leaves bin/repozo alone"
