#!/usr/bin/env bash
# inflatebench.sh -- the one-core bound of `-R`/`-V` of a gzip file written
# by ZODB's repozo (one deflate stream): inflate alone with this build's
# stream decoder (zlib-rs; with ISA-L too if libisal-dev is installed) and
# our md5 alone, over the same file in memory (benches/inflate.rs; issue 9,
# target 5).
#
# Usage:   bash bench/inflatebench.sh [DATA_FS] [PASSES]
#
#   DATA_FS  default: the benchmark's 512 MB cms base.fs
#            (target/bench-cache/cms-size-512mb/base.fs; make it with
#            `bash scripts/bench.sh 512 --profile cms --ops full`)
#   PASSES   best of this many passes (default 3)
#
# DATA_FS is gzipped as ZODB's repozo writes a `.fsz` (Python's gzip.open,
# level 9) into DATA_FS.gz beside it, once.  MB = 10^6 bytes.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
FILE="${1:-$TARGET/bench-cache/cms-size-512mb/base.fs}"
PASSES="${2:-3}"
if [ ! -f "$FILE" ]; then
    echo "inflatebench: no file $FILE; make it with: bash scripts/bench.sh 512 --profile cms --ops full" >&2
    exit 1
fi
bash "$ROOT/scripts/setup-venv.sh" >/dev/null 2>&1
PY="${REPOZO_VENV:-$ROOT/.venv}/bin/python"
GZ="$FILE.gz"
if [ ! -f "$GZ" ] || [ "$GZ" -ot "$FILE" ]; then
    "$PY" - "$FILE" "$GZ.tmp" <<'PYEOF'
import gzip, shutil, sys
with open(sys.argv[1], 'rb') as src, gzip.open(sys.argv[2], 'wb') as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
    mv "$GZ.tmp" "$GZ"
fi

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && cargo bench --quiet --bench inflate -- "$GZ" "$PASSES")
if pkg-config --exists libisal 2>/dev/null; then
    # A target directory of its own, so that target/release/repozo stays
    # the default build.
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET/isal" cargo bench --quiet --bench inflate --features isal -- "$GZ" "$PASSES" | tail -n +2)
else
    echo "(libisal-dev not installed: ISA-L not measured)"
fi
