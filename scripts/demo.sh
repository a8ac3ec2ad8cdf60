#!/usr/bin/env bash
# demo.sh -- build repozo and run a real backup, verify and recover.
#
# Usage: bash scripts/demo.sh
#
# Backs up tests/data/small.fs (a FileStorage written by ZODB 6.4 for the
# test suite) into a new repository under target/demo, shows the files the
# backup made, verifies them and recovers the Data.fs from them. Needs only
# cargo (and nasm and autotools, installed by scripts/build-deps.sh if
# missing); nothing outside target/demo is written.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-deps.sh   # nasm and autotools, for the ISA-L built in
cargo build --release --quiet
bin=target/release/repozo
demo=target/demo
rm -rf "$demo"
mkdir -p "$demo/backups"
cp tests/data/small.fs "$demo/Data.fs"

echo "== $bin --version"
"$bin" --version
echo
echo "== backup: $bin -B -v -f $demo/Data.fs -r $demo/backups"
"$bin" -B -v -f "$demo/Data.fs" -r "$demo/backups"
echo
echo "== what the backup made (the data file, its .dat and .index):"
ls -l "$demo/backups"
echo
echo "== $demo/backups/*.dat (file, start and end offsets, md5):"
cat "$demo"/backups/*.dat
echo
echo "== verify: $bin -V -r $demo/backups"
"$bin" -V -r "$demo/backups" && echo "verified"
echo
echo "== recover: $bin -R -r $demo/backups -o $demo/Recovered.fs"
"$bin" -R -r "$demo/backups" -o "$demo/Recovered.fs"
cmp "$demo/Data.fs" "$demo/Recovered.fs" && echo "recovered $demo/Recovered.fs: byte for byte the backed-up Data.fs"
echo
echo "Next: back up your own Data.fs (the repository directory must exist):"
echo "  mkdir -p /path/to/backups && $bin -B -f /path/to/var/filestorage/Data.fs -r /path/to/backups"
