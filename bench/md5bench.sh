#!/usr/bin/env bash
# md5bench.sh -- md5 alone over one file: ours, the md-5 crate, OpenSSL and
# md5sum, on this machine (issue 9, target 6).
#
# Usage:   bash bench/md5bench.sh [FILE] [PASSES]
#
#   FILE    default: the benchmark's 512 MB cms base.fs if cached
#           (target/bench-cache/cms-size-512mb/base.fs), else a 512 MB file
#           of random bytes made in target/md5bench.dat
#   PASSES  best of this many passes per tool (default 3)
#
# Ours and md-5 hash the file in memory (benches/md5bench.rs); md5sum and
# `openssl dgst -md5` read it from the page cache (warmed first);
# `openssl speed -evp md5` hashes 16 KiB blocks in memory.  MB = 10^6 bytes.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
FILE="${1:-$TARGET/bench-cache/cms-size-512mb/base.fs}"
PASSES="${2:-3}"
if [ ! -f "$FILE" ]; then
    FILE="$TARGET/md5bench.dat"
    [ -f "$FILE" ] || head -c $((512 * 1024 * 1024)) /dev/urandom > "$FILE"
fi
BYTES=$(stat -c %s "$FILE")

echo "md5 over $FILE ($BYTES bytes), best of $PASSES"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$ROOT" && cargo bench --quiet --bench md5bench -- "$FILE" "$PASSES")

cat "$FILE" > /dev/null
# Best wall-clock time of PASSES runs of a command, as MB/s.
rate() {
    local best=""
    for _ in $(seq "$PASSES"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" > /dev/null
        t1=$(date +%s.%N)
        best=$(echo "$t1 - $t0" | bc -l | awk -v b="$best" '{ if (b == "" || $1 < b) print $1; else print b }')
    done
    echo "$BYTES / $best / 1000000" | bc -l | xargs printf '%.1f'
}
printf '%-28s %8s MB/s\n' "md5sum" "$(rate md5sum "$FILE")"
printf '%-28s %8s MB/s\n' "openssl dgst -md5" "$(rate openssl dgst -md5 "$FILE")"
# openssl speed prints k (1000 bytes) per second for each block size.
SPEED=$(openssl speed -evp md5 -bytes 16384 -seconds 3 2>/dev/null | awk '/^md5/ { sub(/k$/, "", $NF); print $NF / 1000 }')
printf '%-28s %8.1f MB/s\n' "openssl speed -evp md5 16K" "$SPEED"
