#!/usr/bin/env bash
# wheel.sh -- build the repozo-rs wheel (pyproject.toml) for manylinux.
#
# Usage: bash scripts/wheel.sh
#
# Installs the exact pins of maturin and ziglang (zig is the linker that lets
# maturin target an old glibc from this machine) into a build venv under
# target/, then builds the `repozo-rs` binary with the crate's default
# features, in release mode, into a wheel tagged manylinux_2_17 (glibc 2.17,
# manylinux2014) in target/wheels/. The last line of stdout is the wheel's
# path. Needs cargo, python3 and the package index; CI runs it through
# scripts/wheel-check.sh, releases through scripts/release.sh.
#
# Environment:
#   REPOZO_PYTHON  interpreter for the build venv (default: python3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MATURIN_PIN="maturin==1.16.0"
ZIG_PIN="ziglang==0.17.1"
COMPAT="manylinux2014"
VENV="$ROOT/target/wheel-venv"
OUT="$ROOT/target/wheels"

want="$MATURIN_PIN $ZIG_PIN"
if [ ! -x "$VENV/bin/maturin" ] || [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$want" ]; then
    echo "wheel.sh: installing $want into $VENV" >&2
    rm -rf "$VENV"
    "${REPOZO_PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        "$MATURIN_PIN" "$ZIG_PIN" >&2
    printf '%s\n' "$want" > "$VENV/.pins"
fi

# ISA-L is built from source into the binary: nasm and autotools.
bash "$ROOT/scripts/build-deps.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
rm -f "$OUT"/repozo_rs-"$version"-*.whl
echo "wheel.sh: $("$VENV/bin/maturin" --version), $("$VENV/bin/python" -m ziglang version 2>/dev/null | sed 's/^/zig /')" >&2
# maturin finds zig through the venv's python (python -m ziglang).
# ISA-L's configure links its test programs -static, which zig refuses for
# glibc: scripts/zig-cc-shared.sh drops that flag (read by the cc crate
# before the compiler maturin sets).
env PATH="$VENV/bin:$PATH" "CC_x86_64-unknown-linux-gnu=$ROOT/scripts/zig-cc-shared.sh" \
    "$VENV/bin/maturin" build --release --zig \
    --compatibility "$COMPAT" --out "$OUT" >&2
wheel=$(ls "$OUT"/repozo_rs-"$version"-*.whl)
[ "$(printf '%s\n' "$wheel" | wc -l)" = 1 ] || { echo "wheel.sh: ERROR: expected one wheel, got: $wheel" >&2; exit 1; }
# The wheel must hold the one command repozo-rs, never ZODB's repozo.
scripts=$("$VENV/bin/python" -m zipfile -l "$wheel" | awk '{print $1}' | grep '\.data/scripts/' || true)
if [ "$scripts" != "repozo_rs-$version.data/scripts/repozo-rs" ]; then
    echo "wheel.sh: ERROR: the wheel's scripts are not exactly repozo-rs: $scripts" >&2
    exit 1
fi
echo "wheel.sh: built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)" >&2
echo "$wheel"
