#!/usr/bin/env bash
# inflatebench.sh -- the one-core bound of `-R`/`-V` of a gzip file written
# by ZODB's repozo (one deflate stream; issue 9, target 5).
#
# Usage:   bash bench/inflatebench.sh [DATA_FS] [PASSES]
#
#   DATA_FS  default: the benchmark's 512 MB cms base.fs
#            (target/bench-cache/cms-size-512mb/base.fs; make it with
#            `bash scripts/bench.sh 512 --profile cms --ops full`)
#   PASSES   best of this many passes of everything timed (default 3)
#
# ZODB's repozo backs DATA_FS up once with -B -F -z into DATA_FS.zodb-z/
# (a one-file repository, cached).  Then, over its .fsz:
#   - inflate alone with the default build's stream decoder (ISA-L) and
#     with zlib-rs (the build without ISA-L, in target/zlib, so that
#     target/release/repozo stays the default build), and our md5 alone,
#     both in memory (benches/inflate.rs); `-R` and `-V` run the two on
#     separate threads and cannot finish before the slower one;
#   - `-V` of that repository by ZODB's repozo and by ours (default
#     build), alternately, right after, since this VM's speed drifts by
#     tens of percent within an hour;
# and prints ZODB's `-V` time over each bound: the best speed-up any
# reader with that inflater can reach on this machine.  MB = 10^6 bytes.

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
THEIRS="${REPOZO_VENV:-$ROOT/.venv}/bin/repozo"
REPO="$FILE.zodb-z"
if ! ls "$REPO"/*.fsz >/dev/null 2>&1 || [ "$REPO" -ot "$FILE" ]; then
    rm -rf "$REPO" "$REPO.tmp"
    mkdir "$REPO.tmp"
    "$THEIRS" -B -F -z -f "$FILE" -r "$REPO.tmp"
    mv "$REPO.tmp" "$REPO"
fi
GZ=$(ls "$REPO"/*.fsz)
(cd "$ROOT" && cargo build --release --quiet)
OURS="$TARGET/release/repozo"

# The two builds of benches/inflate.rs (absolute paths), run one pass per
# call below: bench_exe TARGET_DIR [CARGO ARGS...]
bench_exe() {
    local dir="$1" exe
    shift
    exe=$( (cd "$ROOT" && CARGO_TARGET_DIR="$dir" cargo bench --bench inflate --no-run "$@" 2>&1) |
        sed -n 's/.*Executable .*(\(.*inflate-[0-9a-f]*\)).*/\1/p' | tail -n 1)
    case "$exe" in
        /*) echo "$exe" ;;
        *) echo "$ROOT/$exe" ;;
    esac
}
# The default build inflates with ISA-L (built from source); the build
# without it (in target/zlib, so that target/release stays the default
# build) with zlib-rs.
bash "$ROOT/scripts/build-deps.sh"
ISAL_EXE=$(bench_exe "$TARGET")
ZLIB_EXE=$(bench_exe "$TARGET/zlib" --no-default-features --features s3)

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $GZ (written by ZODB's repozo -B -F -z)"

# Smaller of a kept best and a new value.
min() {
    if [ -z "$1" ]; then echo "$2"; else echo "$1 $2" | awk '{ print ($2 < $1) ? $2 : $1 }'; fi
}
# Wall-clock seconds of a command, its output dropped.
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}

# Everything alternates, PASSES times, best of each kept: this VM's speed
# drifts by tens of percent within an hour.
zlib="" isal="" md5="" theirs="" ours=""
for _ in $(seq "$PASSES"); do
    out=$("$ZLIB_EXE" "$GZ" 1)
    zlib=$(min "$zlib" "$(echo "$out" | awk '/^inflate/ { print $(NF-5) }')")
    md5=$(min "$md5" "$(echo "$out" | awk '/^md5/ { print $(NF-3) }')")
    if [ -n "$ISAL_EXE" ]; then
        out=$("$ISAL_EXE" "$GZ" 1)
        isal=$(min "$isal" "$(echo "$out" | awk '/^inflate/ { print $(NF-5) }')")
    fi
    theirs=$(min "$theirs" "$(seconds "$THEIRS" -V -r "$REPO")")
    ours=$(min "$ours" "$(seconds "$OURS" -V -r "$REPO")")
done
mb=$(stat -c %s "$FILE")
row() { printf '%-30s %7.3f s  %7.1f MB/s\n' "$1" "$2" "$(echo "$mb / $2 / 1000000" | bc -l)"; }
row "inflate alone, zlib-rs" "$zlib"
[ -n "$isal" ] && row "inflate alone, ISA-L" "$isal"
row "md5 alone (ours)" "$md5"
row "ZODB's repozo -V" "$theirs"
row "ours -V (default build)" "$ours"
ratio() { echo "$theirs / $1" | bc -l | xargs printf '%.2fx'; }
bound_zlib=$(echo "$zlib $md5" | awk '{ print ($1 > $2) ? $1 : $2 }')
echo "speed-up of our -V: $(ratio "$ours"); best possible with zlib-rs: $(ratio "$bound_zlib")"
if [ -n "$isal" ]; then
    bound_isal=$(echo "$isal $md5" | awk '{ print ($1 > $2) ? $1 : $2 }')
    echo "best possible with ISA-L: $(ratio "$bound_isal")"
fi
